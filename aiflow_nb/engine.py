"""Engine: the event log, the scheduler and an executor, in one process.

This is the in-process API for scripts and tests; the service hosts
exactly this object.

>>> from aiflow_nb import BashTask, Engine, Workflow
>>> engine = Engine(home=tmp_home)                      # doctest: +SKIP
>>> with Workflow("hello") as wf:                       # doctest: +SKIP
...     BashTask("say", command="echo hello")
>>> engine.submit(wf)                                   # doctest: +SKIP
1
>>> ex = engine.start_execution("hello")                # doctest: +SKIP
>>> engine.wait_for(lambda: engine.execution(ex).status.finished)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from aiflow_nb import faults
from aiflow_nb.clock import SteadyClock
from aiflow_nb.errors import (
    AiflowError,
    ForbiddenError,
    NotFoundError,
    SpecError,
    StorageError,
    StorageFullError,
    no_space,
)
from aiflow_nb.events import DEFAULT_NAMESPACE, Event, EventLog
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.events.log import BatchKey
from aiflow_nb.executors.base import Executor, LaunchRequest, known_executors, run_dir
from aiflow_nb.executors.router import ExecutorRouter
from aiflow_nb.home import database_path, default_home, tighten
from aiflow_nb.scheduler import Scheduler, dryrun, inputs, rerun, verify, why
from aiflow_nb.scheduler.verify import Report
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskAction, TaskStatus, Workflow, WorkflowStatus, overrides
from aiflow_nb.workflow.graph import workflow_svg
from aiflow_nb.workflow.records import (
    Outcome,
    TaskExecution,
    WhyLink,
    WorkflowExecution,
    WorkflowInfo,
    latest_statuses,
)

log = logging.getLogger("aiflow_nb.engine")
#: How many rounds of its own status events a transaction applies before the loop takes over.
CASCADE_ROUNDS = 4
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def prepare_home(home: Path) -> None:
    """Create the home (0700: it holds tokens, events and outputs) or check it can be written."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"the aiflow-nb home {home} exists and is not a folder") from None
    except OSError as exc:
        raise StorageError(f"cannot create the aiflow-nb home {home}: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise StorageError(f"the aiflow-nb home {home} is not writable (read-only file system or no permission)")


def damaged(path: Path, why: str) -> StorageError:
    return StorageError(
        f"the database {path} is damaged or not an aiflow-nb database ({why}); it was left as it is: "
        "restore it from a backup, or move it away to start with an empty home"
    )


class Engine:
    """Owns one home: its DuckDB file, scheduler and executor.

    ``clock`` is injectable so tests can move time (schedules, retries)
    without sleeping.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        executor: str = "kernel-pool",
        executor_options: dict[str, Any] | None = None,
        executors: dict[str, dict[str, Any]] | None = None,
        max_parallel: int = 16,
        batch_size: int = 1000,
        stop_grace: float = 10.0,
        heartbeat_timeout: float = 60.0,
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        prepare_home(self.home)
        tighten(self.home)  # a home left readable by others (an older version, a copy) is made the user's
        path = database_path(self.home)
        try:
            self.db = Database(path)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            if no_space(exc) is not None:
                raise StorageFullError(f"disk full: cannot open the database {path} ({first})") from None
            if "lock" in first.lower():
                raise StorageError(f"the aiflow-nb home {self.home} is in use by another process ({first})") from None
            if "read-only" in first.lower() or "permission denied" in first.lower():
                raise StorageError(f"the aiflow-nb home {self.home} is not writable ({first})") from None
            raise damaged(path, first) from None
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)  # the events; DuckDB creates it after the umask
        # Elapsed time for timeouts, retries and intervals; the wall clock for cron (aiflow_nb.clock).
        clock = clock or SteadyClock()
        self.clock = clock
        self._wall: Callable[[], datetime] = clock.wall if isinstance(clock, SteadyClock) else clock
        self.max_parallel = max_parallel
        self.batch_size = batch_size
        self.stop_grace = stop_grace
        self.heartbeat_timeout = heartbeat_timeout
        self.poll_interval = poll_interval
        try:
            self.db.verify()  # a broken data block opens fine: find it before anything is added
            self.log = EventLog(self.db)
            self.scheduler = Scheduler(self.db, self.log, clock)
        except duckdb.Error as exc:
            self.db.close()
            raise damaged(path, str(exc).splitlines()[0]) from None
        except AiflowError:
            self.db.close()  # a newer schema: left as it is, and the home not kept locked
            raise
        options = {**(executors or {})}
        options[executor] = {**options.get(executor, {}), **(executor_options or {})}
        try:
            #: Every run goes through it, to the executor its task names or the default.
            self.executors = ExecutorRouter(self.home, executor, options)
        except BaseException:
            self.db.close()  # or the home stays locked by this process
            raise
        #: The default executor.
        self.executor: Executor = self.executors.default_executor
        self._wake = threading.Event()
        self.executors.wake = self._wake.set
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[int], None]] = []
        #: Notified whenever events were committed (what :meth:`stream` waits on).
        self._committed = threading.Condition()
        self._outcomes: list[Outcome] = []
        #: Launch requests committed as RUNNING and not yet handed to the executor.
        self._ready: list[LaunchRequest] = []
        self.db.on_rollback(self._ready.clear)  # what a rolled-back commit decided never happened
        self._notified = self.log.latest_offset()
        self._recover()

    # -- the loop --------------------------------------------------------------

    def _recover(self) -> None:
        """Watch again the runs an earlier process left running."""
        with self.db.lock:
            # RUNNING and still in the outbox: it is launched again (see _commit), not watched.
            unlaunched = set(self.scheduler.outbox.pending())
            for te in list(self.scheduler.alive.values()):
                if te.status is TaskStatus.RUNNING and (te.id, te.attempt) in unlaunched:
                    continue
                if te.status in (TaskStatus.RUNNING, TaskStatus.STOPPING):
                    self.executors.recover(te.id, te.attempt)
                if te.status is TaskStatus.STOPPING:
                    self.executors.stop(te.id, self.stop_grace)

    def step(self) -> bool:
        """One round: outcomes, timers, a batch of events, launches.  True if anything happened."""
        with self.db.lock:
            if faults.ENABLED and self.executors.active():
                faults.point("tasks.running")
            # Kept until committed: a failed step must not forget how runs ended.
            self._outcomes.extend(self.executors.poll())
            outcomes = self._outcomes
            if outcomes:
                faults.point("outcome.before")
            with self.db.transaction():
                for outcome in outcomes:
                    self.scheduler.finished(outcome)
                self.scheduler.tick(self.clock(), self._wall())
                consumed = self.scheduler.consume(self.batch_size)
                self._commit()
            self._outcomes = []
            launched = self._act()
            self._notify()
        return bool(outcomes or consumed or launched)

    def _commit(self) -> None:
        """Inside the open transaction: write the scheduler's batch, then apply the rules
        to the status events it appended, a few rounds (a task's end finishes its
        execution, or starts the next task of a chain, in the same transaction).

        The queued launches that fit under ``max_parallel`` are marked RUNNING
        here too, so the launch itself (in :meth:`_act`, after the commit)
        needs no transaction of its own.  The outbox keeps them as not yet
        launched until the next write: a crash before it launches them again
        on restart, and the run folder's claim lets only one of two launches run.
        """
        scheduler = self.scheduler
        wrote = False
        for _ in range(CASCADE_ROUNDS):
            # Before the write: a task execution is inserted RUNNING rather than inserted then updated.
            self._take_launches()
            wrote = scheduler.commit(checkpoint=False) or wrote
            if not scheduler.consume(self.batch_size, just_appended=True):
                break
        scheduler.commit(force=wrote)  # the last round's changes, and the checkpoint: written once

    def _take_launches(self) -> None:
        """Move the launches that may start now from the scheduler's queue to ``_ready``, marked RUNNING."""
        scheduler = self.scheduler
        room = self.max_parallel - self.executors.active() - len(self._ready)
        # A run stopped before its launch has no request: the outbox writes it as sent.
        for request in scheduler.outbox.take_launches(room, scheduler.launch_request):
            timeout = request["task"].get("heartbeat_timeout") or self.heartbeat_timeout
            request["heartbeat_timeout"] = timeout
            request["heartbeat_interval"] = min(5.0, timeout / 4)
            scheduler.mark_running(request["task_execution_id"], request["attempt"])
            self._ready.append(request)

    def _act(self) -> int:
        """Send the launches and stops the last commit decided.

        Launches first: a run committed RUNNING and stopped later in the same
        transaction must exist for its stop to reach it.
        """
        outbox = self.scheduler.outbox
        launched = 0
        while self._ready:
            request = self._ready[0]
            faults.point("launch.before")
            try:
                self.executors.launch(request)  # if it raises, the rest is launched at the next step
            except OSError as exc:
                if no_space(exc) is None:
                    raise
                raise StorageFullError(f"disk full: cannot launch a task in {self.home} ({exc})") from None
            faults.point("launch.after")
            self._ready.pop(0)
            outbox.sent(request["task_execution_id"], request["attempt"])
            launched += 1
        for te_id, _reason in outbox.take_stops():
            self.executors.stop(te_id, self.stop_grace)
        return launched

    def run_forever(self) -> None:
        """Run the loop in this thread until :meth:`close`."""
        unwritable = ""
        while not self._closing.is_set():
            try:
                busy = self.step()
                unwritable = ""
            except StorageError as exc:
                if str(exc) != unwritable:  # once, not every step while the disk stays full
                    log.error("%s; retrying every second", exc)
                    unwritable = str(exc)
                busy = False
                self._closing.wait(1.0)
            except Exception:
                log.exception("scheduler step failed; retrying")
                busy = False
                time.sleep(self.poll_interval)
            if not busy:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
            self.db.lock.let_waiters_in()  # between steps, the requests waiting for the lock go first

    def start(self) -> Engine:
        """Run the loop in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run_forever, name="aiflow-nb-engine", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the loop and close the database; running tasks keep running."""
        self._closing.set()
        self._wake.set()
        with self._committed:
            self._committed.notify_all()  # a stream ends
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self.db.lock:
            with self.db.transaction():
                self.scheduler.commit(force=True)  # the checkpoint it has not written yet
            self.executors.close()
            self.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, predicate: Callable[[], T], timeout: float = 60.0, what: str | None = None) -> T:
        """Return ``predicate()`` once it is truthy, driving the loop if no thread does.

        Raises TimeoutError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            busy = self.step() if self._thread is None else False
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}")
            if not busy:
                time.sleep(0.02)

    def _command(self, fn: Callable[[], T]) -> T:
        with self.db.lock:
            with self.db.transaction():
                result = fn()
                self._commit()
            self._act()
            self._notify()
        self._wake.set()
        return result

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(latest_offset)`` (from the engine's thread) after events were committed."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        latest = self.log.latest_offset()
        if latest > self._notified:
            self._notified = latest
            for listener in self._listeners:
                listener(latest)
            with self._committed:
                self._committed.notify_all()

    # -- workflows ---------------------------------------------------------------

    def submit(self, workflow: Workflow) -> int:
        """Store a new version of ``workflow`` (unless it is unchanged) and return it."""
        workflow.validate()
        named = [task for task in workflow.tasks.values() if task.executor is not None]
        known = known_executors() if named else []  # reading the packages' entry points is slow: only if needed
        for task in named:
            if task.executor not in known:
                raise SpecError(f"task {task.name!r}: unknown executor {task.executor!r}; known: {', '.join(known)}")
        version = self._command(lambda: self.scheduler.submit(workflow))
        faults.point("submit.after")
        return version

    def workflows(self) -> list[WorkflowInfo]:
        """Every submitted workflow, with its newest execution and next scheduled runs."""
        with self.db.lock:
            latest = self.scheduler.store.latest_executions()  # one query, not one per workflow
            return [
                self._described(info, latest.get((info.namespace, info.name)))
                for info in self.scheduler.store.workflows()
            ]

    def workflow_info(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> WorkflowInfo:
        with self.db.lock:
            info = self.scheduler.workflow_info(namespace, name)
            newest = self.scheduler.store.executions(workflow=name, namespace=namespace, limit=1)
            return self._described(info, newest[-1] if newest else None)

    def _described(self, info: WorkflowInfo, latest: WorkflowExecution | None) -> WorkflowInfo:
        return replace(info, latest_execution=latest, next_runs=self.scheduler.next_runs(info.namespace, info.name))

    def workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE, version: int | None = None) -> Workflow:
        with self.db.lock:
            if version is None:
                version = self.scheduler.workflow_info(namespace, name).version
            return self.scheduler.compiled((namespace, name, version)).workflow

    def next_runs(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, datetime]:
        """When each schedule is next due: ``""`` for the workflow's own, else the task's name."""
        with self.db.lock:
            return self.scheduler.next_runs(namespace, name)

    def backfill(self, name: str, start: datetime, end: datetime, namespace: str = DEFAULT_NAMESPACE) -> int:
        """Send the tick events the workflow's schedule had due from ``start`` to ``end``.

        A due time already ticked (live or by an earlier backfill) is not
        sent again.  Returns how many due times the period holds.
        """
        return self._command(lambda: self.scheduler.backfill(namespace, name, start, end))

    def pause(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._command(lambda: self.scheduler.set_paused(namespace, name, True))

    def resume(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._command(lambda: self.scheduler.set_paused(namespace, name, False))

    def delete_workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Stop its running executions and forget the workflow (history stays)."""
        self._command(lambda: self.scheduler.delete(namespace, name))

    def graph_svg(self, name: str, namespace: str = DEFAULT_NAMESPACE, execution: int | None = None) -> str:
        """The workflow's graph as SVG, colored by an execution's runs (default: its newest execution's).

        With ``execution`` the graph is of the version that execution ran.
        """
        if execution is not None:
            ex = self.execution(execution)
            if (ex.namespace, ex.workflow) != (namespace, name):
                raise NotFoundError(f"execution {execution} is not of workflow {namespace}/{name}")
            return workflow_svg(
                self.workflow(name, namespace, ex.version), latest_statuses(self.task_executions(ex.id))
            )
        workflow = self.workflow(name, namespace)
        latest = self.executions(workflow=name, namespace=namespace, limit=1)
        return workflow_svg(workflow, latest_statuses(self.task_executions(latest[-1].id)) if latest else None)

    # -- executions --------------------------------------------------------------

    def start_execution(
        self, name: str, namespace: str = DEFAULT_NAMESPACE, parameters: dict[str, Any] | None = None
    ) -> int:
        given = overrides.checked(parameters)
        return self._command(lambda: self.scheduler.start_execution(namespace, name, given))

    def stop_execution(self, execution_id: int) -> WorkflowExecution:
        """Stop a running execution and its running tasks; returns it, STOPPED."""
        self._command(lambda: self.scheduler.stop_execution(execution_id))
        return self.execution(execution_id)

    def start_task(self, execution_id: int, task: str, parameters: dict[str, Any] | None = None) -> list[TaskExecution]:
        """START ``task`` in a running execution (nothing if it is alive); returns the task's runs."""
        return self._task_action(execution_id, task, TaskAction.START, overrides.checked(parameters))

    def stop_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, TaskAction.STOP)

    def restart_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, TaskAction.RESTART)

    def _task_action(
        self, execution_id: int, task: str, action: TaskAction, parameters: dict[str, Any] | None = None
    ) -> list[TaskExecution]:
        self._command(lambda: self.scheduler.task_action(execution_id, task, action, parameters))
        return [te for te in self.task_executions(execution_id) if te.task == task]

    def execution(self, execution_id: int) -> WorkflowExecution:
        with self.db.lock:
            found = self.scheduler.store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return found

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: WorkflowStatus | str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        wanted = WorkflowStatus(status) if status is not None else None
        with self.db.lock:
            return self.scheduler.store.executions(workflow, namespace, wanted, limit)

    def latest_executions(self) -> dict[tuple[str, str], WorkflowExecution]:
        """The newest execution of each workflow, keyed by (namespace, name)."""
        with self.db.lock:
            return self.scheduler.store.latest_executions()

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        """Every task execution of an execution, oldest first."""
        with self.db.lock:
            return self.scheduler.store.task_executions(execution_id)

    def task_execution(self, task_execution_id: int) -> TaskExecution:
        with self.db.lock:
            found = self.scheduler.store.task_execution(task_execution_id)
        if found is None:
            raise NotFoundError(f"task execution {task_execution_id} does not exist")
        return found

    def run_dir(self, task_execution_id: int) -> Path:
        """The folder of the latest attempt: ``log.txt``, ``output.ipynb``, ``result.json``."""
        te = self.task_execution(task_execution_id)
        return run_dir(self.home, te.id, te.attempt)

    def task_log(self, task_execution_id: int) -> str:
        """What the run's latest attempt wrote to stdout and stderr ("" before it starts)."""
        data = self._run_file(task_execution_id, "log.txt")
        return data.decode(errors="replace") if data is not None else ""

    def task_notebook(self, task_execution_id: int) -> dict[str, Any]:
        """The executed notebook of a notebook task's latest attempt, as nbformat JSON."""
        data = self._run_file(task_execution_id, "output.ipynb")
        if data is None:
            raise NotFoundError(
                f"task execution {task_execution_id} has no executed notebook (not a notebook task, or not run yet)"
            )
        notebook: dict[str, Any] = json.loads(data)
        return notebook

    def _run_file(self, task_execution_id: int, name: str) -> bytes | None:
        """The run's file ``name``, or None if there is none; refused if it may lead out of the home's runs.

        A task writes in its run folder and could leave a link there: its files must not serve,
        say, ``~/.ssh/id_rsa``.  A symbolic link must stay under ``runs/``; a hard link (a second
        name of a file, which may be any of the user's on the same file system) is refused.  The
        file is checked as opened, so it cannot be swapped between the check and the read.
        """
        path = self.run_dir(task_execution_id) / name
        if not path.exists():
            return None
        real = path.resolve()
        if not real.is_relative_to((self.home / "runs").resolve()):
            raise ForbiddenError(f"task execution {task_execution_id}: its {name} leads outside the aiflow-nb home")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: made a symbolic link since
            raise ForbiddenError(f"task execution {task_execution_id}: its {name} cannot be read safely") from exc
        with os.fdopen(fd, "rb") as file:
            found = os.fstat(file.fileno())
            if not stat.S_ISREG(found.st_mode):
                raise ForbiddenError(f"task execution {task_execution_id}: its {name} is not a regular file")
            if found.st_nlink > 1:
                raise ForbiddenError(
                    f"task execution {task_execution_id}: its {name} is a hard link (another name of a file); "
                    "not served"
                )
            return file.read()

    def why(self, task_execution_id: int) -> list[WhyLink]:
        """Why this run was made: its chain of causes, the run first, the outside event or command last."""
        with self.db.lock:
            return why.task_chain(why.StoreLookup(self.scheduler.store), task_execution_id)

    def why_execution(self, execution_id: int) -> list[WhyLink]:
        """Why this execution was made, as :meth:`why` for a run."""
        with self.db.lock:
            return why.execution_chain(why.StoreLookup(self.scheduler.store), execution_id)

    def replay(
        self,
        workflow: Workflow | str,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        outcomes: str = "recorded",
        diff: bool = False,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        version: int | None = None,
    ) -> dryrun.Replay:
        """What ``workflow`` would have made over the logged events after ``since`` up to ``until``.

        In memory: nothing is written, nothing is launched (docs/semantics.md, "replay").
        ``workflow``: a draft, or the name of a submitted one (its ``version``, default the latest).
        ``diff``: compare with what the submitted version of the workflow did (it must exist).
        """
        dryrun.check_outcomes(outcomes)
        if isinstance(workflow, str):
            workflow = self.workflow(workflow, namespace, version)  # NotFoundError names what is missing
        with self.db.lock:
            store = self.scheduler.store
            latest = self.log.latest_offset()
            start = self._offset_at(since, 0)
            end = self._offset_at(until, latest)
            dryrun.check_window(start, end, latest)
            key = (workflow.namespace, workflow.name)
            known = {(w.namespace, w.name) for w in store.workflows()}
            if diff and key not in known:
                raise SpecError(f"replay --diff: no workflow {key[0]}/{key[1]} was submitted")
            spec = json.dumps(workflow.to_spec())
            keys = rerun.wanted_keys({(*key, 1): (spec, workflow.digest())})
            events = list(store.rule_events(keys, since=start, until=end))
            ids = {
                int(e.value["execution_id"])
                for e in events
                if e.key == event_keys.EXECUTION_STATUS
                and e.namespace == key[0]
                and isinstance(e.value, dict)
                and e.value.get("workflow") == key[1]
                and e.value.get("status") == "RUNNING"
            }
            reality = dryrun.Reality(
                [(ex, store.cause_of("execution", ex.id)) for i in sorted(ids) if (ex := store.execution(i))],
                [(te, store.cause_of("task", te.id)) for te in store.task_executions_of(ids)],
            )
            recorded = [inputs.from_value(o, v) for o, v in store.recorded_inputs(start, end)]
            submits = [inputs.from_value(o, v) for o, v in store.recorded_inputs(kind="submit")]
            last_ticks, submitted_at = dryrun.seed_ticks(
                workflow, store.events_of_key(event_keys.SCHEDULE_TICK, start), submits, start
            )
        result = dryrun.DryRun(workflow, start, end, outcomes, reality, last_ticks, submitted_at).run(events, recorded)
        if not diff:
            result.diff = None
        return result

    def _offset_at(self, when: int | datetime | None, default: int) -> int:
        """An offset as given, or the last offset logged before a time."""
        if when is None:
            return default
        if isinstance(when, datetime):
            return self.scheduler.store.offset_before(when)
        return int(when)

    def verify(self) -> Report:
        """Replay the log from offset 0 and compare the state it implies with the stored one.

        See docs/semantics.md ("verify") for what is compared.
        """
        with self.db.lock:
            return verify.check(self.scheduler.store)

    # -- events ------------------------------------------------------------------

    def send_event(
        self,
        key: str,
        value: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        sender: str | None = None,
        context: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append an event to the log and return its offset."""
        return self.send_events([Event(key, value, namespace, sender, context)], [idempotency_key])[0]

    def send_events(
        self,
        events: Sequence[Event] | EncodedEvents,
        idempotency_keys: Sequence[str | None] | None = None,
        *,
        batch_keys: Sequence[BatchKey] = (),
        on_commit: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """Append events in one transaction and return their offsets.

        ``batch_keys``: idempotency keys of ranges of the events (see ``EventLog.stage``);
        ``events`` may come encoded already (the service encodes a request's as it reads it).

        The scheduler reacts to them in that same transaction: the executions
        and launches they cause are committed with them, and the launches are
        sent right after.  ``on_commit(offsets)`` runs once they are durable,
        before any launch (the service answers the request there).
        """
        with self.db.lock:
            try:
                with self.db.transaction():
                    offsets = self.log.stage(events, idempotency_keys, batch_keys)
                    self.scheduler.consume(self.batch_size, just_appended=True)
                    self._commit()
                    faults.point("commit.before")
            except AiflowError:
                raise  # the events themselves are wrong: nothing was appended
            except Exception:
                # A scheduler fault must not cost the sender its events: append
                # them alone; the loop retries the rules (and logs the fault again).
                log.exception("scheduler failed on new events; appending them without it")
                with self.db.transaction():
                    offsets = self.log.stage(events, idempotency_keys, batch_keys)
            faults.point("commit.after")
            self._notify()
            if on_commit is not None:
                on_commit(offsets)
            try:
                self._act()
            except Exception:
                # The events are committed: report success; the loop retries the launches.
                log.exception("launching after new events failed; retrying in the loop")
            self._notify()
        self._wake.set()
        return offsets

    def events(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        """The events after offset ``since`` (oldest first), at most ``limit``, matching the filters."""
        return self.log.read(since=since, limit=limit, key=key, namespace=namespace, sender=sender)

    def stream(self, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after ``since``, then each new one as it is committed.

        Ends when ``stop`` is set (noticed within a second) or the engine closes.
        """
        while not (stop is not None and stop.is_set()) and not self._closing.is_set():
            events = self.log.read(since=since, limit=1000)
            for event in events:
                since = event.offset or since
                yield event
            if not events:
                with self._committed:
                    if self.log.latest_offset() <= since:
                        self._committed.wait(1.0)


if TYPE_CHECKING:
    from aiflow_nb.workflow.api import AiflowApi

    def _offers_the_api(engine: Engine) -> AiflowApi:
        return engine  # mypy checks that the engine offers the one API, as the client does


__all__ = ["Engine", "utc_now"]
