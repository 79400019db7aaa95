"""A dry run: a given workflow put through the decision core over a window of the recorded log.

Pure: the log's events and recorded inputs of the window, and what the
submitted version of the workflow did there, in; the executions and runs
the given version would have made, with their causes, a summary and the
differences with reality, out.  Nothing is written, nothing is launched.

Assumptions (docs/semantics.md, "replay"): each run ends at the moment it
is launched (no duration), as ``outcomes`` says (``success``, ``failed``,
or ``recorded``: as the submitted version's run of the same execution,
task and seq ended, else success; a streaming run, or one whose
counterpart is still alive, keeps running); the clock is the log's (each
event at its create time, each recorded command and clock input at its
``now``); the events the scheduler itself appended for this workflow
(status events, its schedule ticks) are not read from the log, the
replay's own ones are.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aiflow_nb.errors import AiflowError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import dryrun_diff, inputs
from aiflow_nb.scheduler.core import Core
from aiflow_nb.scheduler.dryrun_diff import OWN_KEYS, describe_cause
from aiflow_nb.scheduler.dryrun_window import OUTCOMES, check_outcomes, check_window, parse_bound
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry
from aiflow_nb.scheduler.rerun import MemoryRows
from aiflow_nb.workflow import TaskStatus, Workflow
from aiflow_nb.workflow.records import TaskExecution

log = logging.getLogger("aiflow_nb.scheduler.dryrun")

WORKFLOW_KEYS = (
    event_keys.WORKFLOW_SUBMITTED, event_keys.WORKFLOW_PAUSED, event_keys.WORKFLOW_RESUMED,
    event_keys.WORKFLOW_DELETED, event_keys.INPUT,
)  # fmt: skip


#: What the submitted version did in the window (executions and runs, with their causes).
Reality = dryrun_diff.Runs

__all__ = ["OUTCOMES", "DryRun", "Reality", "Replay", "check_outcomes", "check_window", "parse_bound", "seed_ticks"]


@dataclass
class Replay:
    """What the given version would have made (``items`` in log order), and how that differs from reality."""

    workflow: str
    namespace: str
    since: int
    until: int
    outcomes: str
    items: list[dict[str, Any]] = field(default_factory=list)
    unmatched: int = 0
    diff: dict[str, list[dict[str, Any]]] | None = None

    def summary(self) -> dict[str, Any]:
        per_task: dict[str, int] = {}
        for item in self.items:
            if item["kind"] == "run":
                per_task[item["task"]] = per_task.get(item["task"], 0) + 1
        return {
            "executions": sum(1 for i in self.items if i["kind"] == "execution"),
            "runs": dict(sorted(per_task.items())),
            "unmatched_events": self.unmatched,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "namespace": self.namespace,
            "since": self.since,
            "until": self.until,
            "outcomes": self.outcomes,
            "items": self.items,
            "summary": self.summary(),
            "diff": self.diff,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Replay:
        return cls(
            workflow=data["workflow"],
            namespace=data["namespace"],
            since=int(data["since"]),
            until=int(data["until"]),
            outcomes=data["outcomes"],
            items=list(data.get("items") or []),
            unmatched=int(data.get("summary", {}).get("unmatched_events", 0)),
            diff=data.get("diff"),
        )

    def lines(self) -> list[str]:
        """The would-be executions and runs in log order, the summary, then the differences."""
        shown = []
        for item in self.items:
            where = f" (event {item['offset']} {item['key']})" if item.get("offset") else ""
            if item["kind"] == "execution":
                shown.append(f"execution {item['id']} {item['status']}: {item['cause']}{where}")
            else:
                name = f"{item['task']} #{item['seq']}"
                shown.append(f"  {name} {item['status']}: {item['cause']}{where}")
        summary = self.summary()
        runs = ", ".join(f"{task} {n}" for task, n in summary["runs"].items()) or "none"
        shown.append(
            f"{summary['executions']} execution(s); runs: {runs}; "
            f"{summary['unmatched_events']} event(s) matched nothing"
        )
        if self.diff is not None:
            for name, title in (("only_replay", "only in the replay"), ("only_real", "only in reality")):
                for row in self.diff[name]:
                    shown.append(f"{title}: {row['task']} #{row['seq']} of the execution made by {row['execution']}")
            for row in self.diff["cause_differs"]:
                shown.append(f"cause differs: {row['task']} #{row['seq']}: replay {row['replay']}, real {row['real']}")
            if not any(self.diff.values()):
                shown.append("no difference with what the submitted version did")
        return shown


def seed_ticks(
    workflow: Workflow, ticks: Iterable[Event], submits: Iterable[inputs.Recorded], since: int
) -> tuple[dict[tuple[str, str, str], datetime], datetime | None]:
    """The schedule state at ``since``: the last live tick of each of the workflow's schedules, and its submit time.

    ``ticks``: the log's schedule ticks up to ``since``; ``submits``: the recorded submissions (any offset).
    The submit time is the last submission of the workflow at or before ``since``, else its first one after.
    """
    key = (workflow.namespace, workflow.name)
    last: dict[tuple[str, str, str], datetime] = {}
    for event in ticks:
        value = event.value if isinstance(event.value, dict) else {}
        if (event.namespace, value.get("workflow")) != key or value.get("backfill") or (event.offset or 0) > since:
            continue
        last[(*key, value.get("task") or "")] = datetime.fromisoformat(value["scheduled_time"])
    mine = [r for r in submits if isinstance(r.input, inputs.Submit) and (r.input.namespace, r.input.name) == key]
    before = [r.now for r in mine if r.offset <= since]
    after = [r.now for r in mine if r.offset > since]
    return last, (before[-1] if before else after[0] if after else None)


class DryRun:
    """One replay of ``workflow`` over the events with ``since < offset <= until``."""

    def __init__(
        self,
        workflow: Workflow,
        since: int,
        until: int,
        outcomes: str,
        reality: Reality,
        last_ticks: dict[tuple[str, str, str], datetime] | None = None,
        submitted_at: datetime | None = None,
    ) -> None:
        check_outcomes(outcomes)
        #: When the submitted version was submitted (schedules count from it), else the window's first time.
        self.submitted_at = submitted_at
        self.workflow = workflow
        self.key = (workflow.namespace, workflow.name)
        self.since, self.until, self.outcomes = since, until, outcomes
        self.reality = reality
        self.core = Core()
        self.core.outbox = Outbox()
        self.rows = MemoryRows(self.core, {})
        self.core.store = self.rows
        self.core.reset(Registry(lambda key: self.rows.spec(*key)), since, (0, 0), last_ticks=last_ticks)
        self.result = Replay(workflow.name, workflow.namespace, since, until, outcomes)
        #: The scheduler's own events of the replay, by the (negative) offsets given to them.
        self.own: dict[int, Event] = {}
        self.seen: dict[int, Event] = {}
        self.real_ids = {ex.id for ex, _ in reality.executions}
        self.real_runs = {(ex_id, t.task, t.seq): t for t, _ in reality.runs for ex_id in [t.execution_id]}
        #: Real execution id -> the replay's execution made by the same cause.
        self.twin: dict[int, int] = {}
        self._next_own = -1
        self._submitted = False

    # -- feeding ------------------------------------------------------------------------

    def run(self, events: Iterable[Event], recorded: Iterable[inputs.Recorded]) -> Replay:
        pending = deque(sorted((r for r in recorded if self._concerns(r.input)), key=lambda r: r.offset))
        for event in events:
            offset = event.offset or 0
            if offset <= self.since:
                continue
            if offset > self.until:
                break
            self.seen[offset] = event
            while pending and pending[0].at < offset:
                self._input(pending.popleft())
            self._submit(event.create_time)
            if self._skipped(event):
                continue
            mapped = self._scoped(event)
            if mapped is None:
                continue
            self._step(self.core.process, mapped)
            self.core.checkpoint = offset
        while pending and pending[0].at <= self.until:
            self._input(pending.popleft())
        self._collect()
        return self.result

    def _submit(self, now: datetime | None) -> None:
        if self._submitted or now is None:
            return
        self._submitted = True
        now = self.submitted_at or now
        wf = self.workflow
        self._step(self.core.take, inputs.Submit(wf.namespace, wf.name, wf.digest(), wf), now)

    def _concerns(self, inp: inputs.Input) -> bool:
        if isinstance(inp, inputs.Clock):
            return True
        if isinstance(inp, (inputs.StartExecution, inputs.SetPaused)):
            return (inp.namespace, inp.name) == self.key
        if isinstance(inp, (inputs.StopExecution, inputs.TaskCommand)):
            return inp.execution_id in self.real_ids
        return False

    def _input(self, recorded: inputs.Recorded) -> None:
        self._submit(recorded.now)
        inp = recorded.input
        if isinstance(inp, (inputs.StopExecution, inputs.TaskCommand)):
            twin = self.twin.get(inp.execution_id)
            if twin is None:
                return
            inp = replace(inp, execution_id=twin)
        self._step(self.core.take, inp, recorded.now)

    def _skipped(self, event: Event) -> bool:
        """The scheduler's own events about this workflow (the replay makes its own)."""
        if event.key in WORKFLOW_KEYS:
            return True
        value = event.value if isinstance(event.value, dict) else {}
        if event.key == event_keys.SCHEDULE_TICK:
            return (event.namespace, value.get("workflow")) == self.key
        if event.key in OWN_KEYS:
            return (event.namespace, value.get("workflow")) == self.key
        return False

    def _scoped(self, event: Event) -> Event | None:
        """The event as the replay reads it: scoped to the twin of its execution, or None."""
        ex_id = event.execution_id
        if ex_id is None:
            return event
        if ex_id not in self.real_ids:
            return None  # another workflow's: the replay has no execution of it
        twin = self.twin.get(ex_id)
        if twin is None:
            self.result.unmatched += 1
            return None
        sender = event.sender
        if sender and sender.startswith(f"{ex_id}/"):
            sender = f"{twin}/{sender[len(str(ex_id)) + 1 :]}"
        return replace(event, context={**(event.context or {}), "execution_id": twin}, sender=sender)

    # -- one step and everything it sets off -------------------------------------------

    def _step(self, apply: Callable[..., Any], *args: Any) -> None:
        core = self.core
        try:
            apply(*args)
        except AiflowError as exc:
            log.info("replay: %s", exc)
        queue: deque[Event] = deque()
        launched = 0
        while True:
            self._note_new()
            for event, _ in core.events:
                event = replace(event, offset=self._next_own, create_time=core.now)
                self.own[self._next_own] = event
                self._next_own -= 1
                queue.append(event)
            core.events.clear()
            launches = core.changes.launches[launched:]
            launched = len(core.changes.launches)
            for te_id, attempt in launches:
                self._run(te_id, attempt)
            for te_id, _ in core.outbox.take_stops():
                te = core.alive.get(te_id)
                if te is not None:
                    self._take(inputs.Finished(te_id, te.attempt, TaskStatus.STOPPED))
            if core.events:
                continue
            if not queue:
                return
            try:
                core.process(queue.popleft())
            except AiflowError as exc:
                log.info("replay: %s", exc)

    def _take(self, inp: inputs.Input) -> None:
        try:
            self.core.take(inp, self.core.now)
        except AiflowError as exc:
            log.info("replay: %s", exc)

    def _run(self, te_id: int, attempt: int) -> None:
        """Launch and end a run at once, as ``outcomes`` says."""
        self._take(inputs.Dispatch(te_id, attempt))
        te = self.core.alive.get(te_id)
        if te is None:
            return
        status = self._outcome(te)
        if status is not None:
            self._take(inputs.Finished(te_id, attempt, status))

    def _outcome(self, te: TaskExecution) -> TaskStatus | None:
        task = self.core._task_of(te)
        if self.outcomes == "failed":
            return TaskStatus.FAILED
        if self.outcomes == "recorded":
            real_ex = next((r for r, t in self.twin.items() if t == te.execution_id), None)
            real = self.real_runs.get((real_ex, te.task, te.seq)) if real_ex is not None else None
            if real is not None:
                if real.status.alive:
                    return None
                if real.status is TaskStatus.STOPPED:
                    return None  # it ran until something stopped it
                return real.status if real.attempt <= te.attempt else TaskStatus.FAILED
        if task is not None and task.streaming:
            return None
        return TaskStatus.SUCCESS

    def _note_new(self) -> None:
        """Pair each new execution with the real one made by the same cause."""
        core = self.core
        for ex_id in sorted(core.changes.new_executions):
            if ex_id in self.twin.values():
                continue
            mine = describe_cause(core.changes.causes.get(("execution", ex_id)), self._events())
            for real, why in self.reality.executions:
                if real.id not in self.twin and describe_cause(why, self._events()) == mine:
                    self.twin[real.id] = ex_id
                    break
            else:
                self.twin[-ex_id] = ex_id  # no counterpart: a key no real id has

    def _events(self) -> dict[int, Event]:
        return {**self.seen, **self.own}

    # -- the answer ---------------------------------------------------------------------

    def _collect(self) -> None:
        core, events = self.core, self._events()
        # Ids grow in the order of the decisions, which is the log's: an execution goes before its first run.
        first: dict[int, int] = {}
        items: list[tuple[tuple[int, int], dict[str, Any]]] = []
        for te_id, te in sorted(core.changes.tasks.items()):
            first.setdefault(te.execution_id, te_id)
            why = core.changes.causes.get(("task", te_id))
            item = self._item("run", te_id, te.status.value, why, events)
            item.update(execution_id=te.execution_id, task=te.task, seq=te.seq, attempt=te.attempt)
            items.append(((te_id, 1), item))
        for ex_id, ex in core.changes.executions.items():
            why = core.changes.causes.get(("execution", ex_id))
            items.append(
                (
                    (first.get(ex_id, core.last_task_id + ex_id), 0),
                    self._item("execution", ex_id, ex.status.value, why, events),
                )
            )
        self.result.items = [item for _, item in sorted(items, key=lambda x: x[0])]
        changes = self.core.changes
        replayed = dryrun_diff.Runs(
            [(ex, changes.causes.get(("execution", ex_id))) for ex_id, ex in changes.executions.items()],
            [(te, changes.causes.get(("task", te_id))) for te_id, te in changes.tasks.items()],
        )
        self.result.diff = dryrun_diff.differences(replayed, self.reality, events)

    def _item(self, kind: str, id_: int, status: str, why: str | None, events: Mapping[int, Event]) -> dict[str, Any]:
        found = json.loads(why) if why else {}
        offset = _root_offset(found)
        event = events.get(offset) if offset is not None else None
        return {
            "kind": kind,
            "id": id_,
            "status": status,
            "offset": offset if offset is not None and offset > 0 else None,
            "key": event.key if event is not None else found.get("input"),
            "cause": describe_cause(found, events),
        }


def _root_offset(found: dict[str, Any]) -> int | None:
    while isinstance(found, dict) and "restart_of" in found:
        found = found.get("cause") or {}
    if isinstance(found, dict) and "event" in found:
        return int(found["event"])
    return None
