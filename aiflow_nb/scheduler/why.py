"""Why a run or an execution was made: the chain of causes back to an outside event or a command.

Pure: the recorded ``cause`` of each row (see :func:`.state.cause`) and the
log's events are read through a :class:`Lookup`; the answer is a list of
:class:`~aiflow_nb.workflow.records.WhyLink`, the run itself first and the
root last.  A link to an event sent by a run (a task status event, or an
event a task sent from inside its execution) goes on with that run's own
chain, so the answer ends at an event from outside, a schedule tick or a
command.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiflow_nb.errors import NotFoundError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow.records import TaskExecution, WhyLink, WorkflowExecution

log = logging.getLogger("aiflow_nb.scheduler.why")

#: A chain longer than this is cut (a status rule loop can make long ones).
MAX_LINKS = 200
#: Keys whose value names the run that sent them.
RUN_KEYS = (event_keys.TASK_STATUS, event_keys.TASK_FAILED, event_keys.TASK_STOPPED, event_keys.TASK_TIMEOUT)
COMMANDS = {
    "start_execution": "execution start",
    "stop_execution": "execution stop",
    "task_action": "task action",
    "submit": "submit",
    "clock": "the clock",
}


class Lookup(Protocol):
    """Rows and events by id (the store under the engine's lock, or memory)."""

    def execution(self, execution_id: int) -> tuple[WorkflowExecution, str | None] | None: ...
    def task_execution(self, task_execution_id: int) -> tuple[TaskExecution, str | None] | None: ...
    def run_of(self, execution_id: int, task: str, seq: int) -> int | None: ...
    def event(self, offset: int) -> Event | None: ...


def run_name(te: TaskExecution) -> str:
    return f"{te.task} #{te.seq}"


def task_chain(lookup: Lookup, task_execution_id: int) -> list[WhyLink]:
    """Why this run was made; NotFoundError if there is no such run."""
    found = lookup.task_execution(task_execution_id)
    if found is None:
        raise NotFoundError(f"task execution {task_execution_id} does not exist")
    links: list[WhyLink] = []
    _Walk(lookup, links).task(*found)
    return links


def execution_chain(lookup: Lookup, execution_id: int) -> list[WhyLink]:
    """Why this execution was made; NotFoundError if there is no such execution."""
    found = lookup.execution(execution_id)
    if found is None:
        raise NotFoundError(f"execution {execution_id} does not exist")
    links: list[WhyLink] = []
    _Walk(lookup, links).execution(*found)
    return links


def line(links: list[WhyLink]) -> str:
    """The chain on one line, ``a <- b <- c``."""
    return " <- ".join(link.text for link in links)


#: Links that end a short cause (a root, or the end of what is known).
_SHORT_ENDS = ("schedule", "command", "unknown")
#: At most this many links in a short cause.
SHORT_LINKS = 3


def short(links: list[WhyLink]) -> str:
    """The cause of a run in a few words, for a table: ``START on hour_complete (rule 2) <- event 1234``.

    The run itself is left out; the text stops at the first event, schedule tick or command.  An event
    about another run (its status) keeps its words, which name that run; another event is its offset.
    """
    parts: list[str] = []
    for link in links[1:]:
        if link.kind == "event":
            about_run = link.key in (*RUN_KEYS, event_keys.EXECUTION_STATUS)
            parts.append(link.text if about_run or link.offset is None else f"event {link.offset}")
            break
        parts.append(link.text)
        if link.kind in _SHORT_ENDS or len(parts) >= SHORT_LINKS:
            break
    return " <- ".join(parts) if parts else line(links)


class _Walk:
    def __init__(self, lookup: Lookup, links: list[WhyLink]) -> None:
        self.lookup = lookup
        self.links = links
        self.seen: set[tuple[str, int]] = set()

    def add(self, link: WhyLink) -> bool:
        """Add a link; False once the chain is too long."""
        if len(self.links) >= MAX_LINKS:
            if self.links[-1].kind != "unknown":
                self.links.append(WhyLink("unknown", f"... (cut after {MAX_LINKS} links)"))
            return False
        self.links.append(link)
        return True

    def task(self, te: TaskExecution, why: str | None) -> None:
        if ("task", te.id) in self.seen:
            return
        self.seen.add(("task", te.id))
        text = f"{run_name(te)} (task execution {te.id} of execution {te.execution_id})"
        if not self.add(WhyLink("run", text)):
            return
        if te.attempt > 1:
            self.add(WhyLink("retry", f"attempt {te.attempt}: retried after attempt {te.attempt - 1} failed"))
        found = self.lookup.execution(te.execution_id)
        if found is not None and why is not None and why == found[1]:
            # Made with its execution (a task with no START rule): the execution's cause is its cause.
            self.execution(*found)
            return
        self.cause(_parsed(why), te.execution_id)

    def execution(self, ex: WorkflowExecution, why: str | None) -> None:
        if ("execution", ex.id) in self.seen:
            return
        self.seen.add(("execution", ex.id))
        if self.add(WhyLink("execution", f"execution {ex.id} of {ex.workflow} (version {ex.version})")):
            self.cause(_parsed(why), ex.id)

    def cause(self, why: dict[str, Any] | None, execution_id: int) -> None:
        if why is None:
            self.add(WhyLink("unknown", "no cause recorded (made before causes were kept)"))
            return
        if "restart_of" in why:
            before = self.lookup.task_execution(int(why["restart_of"]))
            name = run_name(before[0]) if before is not None else f"task execution {why['restart_of']}"
            if self.add(WhyLink("restart", f"RESTART, once {name} had stopped")):
                self.cause(why.get("cause"), execution_id)
            return
        if "input" in why:
            kind = str(why["input"])
            text = f"command: {COMMANDS.get(kind, kind)}" + (f" at {why['now']}" if why.get("now") else "")
            self.add(WhyLink("command", text, key=kind))
            return
        offset = int(why["event"])
        event = self.lookup.event(offset)
        key = event.key if event is not None else None
        rule = why.get("rule")
        if why.get("queued"):
            ok = self.add(WhyLink("queued", "trigger waited for a free slot (max_active_executions)", offset, key))
        elif rule == "schedule":
            ok = True  # the tick event says it all
        elif rule is not None and ":trigger#" in str(rule):
            ok = self.add(WhyLink("trigger", f"trigger on {key} (rule {rule})", offset, key, rule=str(rule)))
        else:
            ok = self.add(WhyLink("rule", f"START on {key} (rule {rule})", offset, key, rule=rule))
        if ok:
            self.event(offset, event)

    def event(self, offset: int, event: Event | None) -> None:
        if event is None:
            self.add(WhyLink("unknown", f"event {offset} (not in the log)", offset))
            return
        key, sender, value = event.key, event.sender, event.value if isinstance(event.value, dict) else {}
        origin = f" from {sender}" if sender else ""
        if key == event_keys.SCHEDULE_TICK and sender == "aiflow.schedule":
            what = f"{value.get('workflow')}" + (f" task {value['task']}" if value.get("task") else "")
            text = f"event {offset}: schedule tick of {what} due at {value.get('scheduled_time')}"
            self.add(WhyLink("schedule", text, offset, key, sender))
            return
        if key in RUN_KEYS and "task_execution_id" in value:
            status = value.get("status")
            text = f"event {offset} {key}: {value.get('task')} #{value.get('seq')} {status}"
            if self.add(WhyLink("event", text, offset, key, sender)):
                self._run(int(value["task_execution_id"]))
            return
        if key == event_keys.EXECUTION_STATUS and "execution_id" in value:
            text = f"event {offset} {key}: execution {value['execution_id']} {value.get('status')}"
            found = self.lookup.execution(int(value["execution_id"]))
            if self.add(WhyLink("event", text, offset, key, sender)) and found is not None:
                self.execution(*found)
            return
        sent_by = _sent_by(event)
        if sent_by is not None:
            te_id = self.lookup.run_of(*sent_by)
            text = f"event {offset} {key}{origin}, sent from inside it"
            if self.add(WhyLink("event", text, offset, key, sender)) and te_id is not None:
                self._run(te_id)
            return
        self.add(WhyLink("event", f"event {offset} {key}{origin}", offset, key, sender))

    def _run(self, te_id: int) -> None:
        found = self.lookup.task_execution(te_id)
        if found is not None:
            self.task(*found)


def _parsed(why: str | None) -> dict[str, Any] | None:
    if not why:
        return None
    try:
        value = json.loads(why)
    except ValueError:
        log.warning("a cause that is not JSON: %r", why)
        return None
    return value if isinstance(value, dict) else None


def _sent_by(event: Event) -> tuple[int, str, int] | None:
    """(execution, task, seq) of the run that sent a scoped event from inside it."""
    if event.execution_id is None or not event.sender:
        return None
    parts = event.sender.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return event.execution_id, parts[1], int(parts[2])


class Rows(Protocol):
    """The reads of :class:`~.store.Store` a :class:`StoreLookup` uses."""

    def execution(self, execution_id: int) -> WorkflowExecution | None: ...
    def task_execution(self, task_execution_id: int) -> TaskExecution | None: ...
    def cause_of(self, kind: str, row_id: int) -> str | None: ...
    def run_id(self, execution_id: int, task: str, seq: int) -> int | None: ...
    def event_at(self, offset: int) -> Event | None: ...


class StoreLookup:
    """A :class:`Lookup` over the stored rows (the caller holds the database's lock)."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def execution(self, execution_id: int) -> tuple[WorkflowExecution, str | None] | None:
        found = self.rows.execution(execution_id)
        return (found, self.rows.cause_of("execution", execution_id)) if found is not None else None

    def task_execution(self, task_execution_id: int) -> tuple[TaskExecution, str | None] | None:
        found = self.rows.task_execution(task_execution_id)
        return (found, self.rows.cause_of("task", task_execution_id)) if found is not None else None

    def run_of(self, execution_id: int, task: str, seq: int) -> int | None:
        return self.rows.run_id(execution_id, task, seq)

    def event(self, offset: int) -> Event | None:
        return self.rows.event_at(offset)
