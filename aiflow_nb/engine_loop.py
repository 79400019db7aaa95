"""The engine's loop: its home opened, the step (outcomes, clock, events: one transaction), launches, stops.

:class:`EngineLoop` is the base of :class:`aiflow_nb.engine.Engine`: it opens
the home's database, scheduler and executors, runs the scheduler's step in
one transaction per batch, hands over what each commit decided (launches
after the commit, then stops) and runs a command the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import duckdb

from aiflow_nb import faults
from aiflow_nb.clock import SteadyClock
from aiflow_nb.errors import AiflowError, StorageError, StorageFullError, no_space
from aiflow_nb.events import EventLog
from aiflow_nb.executors.base import Executor, LaunchRequest
from aiflow_nb.executors.router import ExecutorRouter
from aiflow_nb.home import database_path, default_home, tighten
from aiflow_nb.scheduler import Scheduler
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskStatus
from aiflow_nb.workflow.records import Outcome

log = logging.getLogger("aiflow_nb.engine")
#: How many rounds of its own status events a transaction applies before the loop takes over.
CASCADE_ROUNDS = 4
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


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


class EngineLoop:
    """Owns one home: its DuckDB file, scheduler and executors, and the loop that drives them.

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

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
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
