"""The scheduler: the engine's shell around the decision core (:mod:`.core`).

It loads the memory (:class:`~.memory.State`) from the store, feeds the
core the log's events after the checkpoint and the other inputs (commands,
dispatches, outcomes, the clock: each read here, once, and passed in as
``now``), applies each input's :class:`~.decisions.Decisions` to the memory
and the batch (:meth:`.core.Core.apply`), and writes the batch (rows,
condition state, events, launches and the consumed offset) through
:meth:`Scheduler.commit` inside the caller's transaction.  Launches and stops go to its :class:`~.outbox.Outbox`.  After
a crash, :meth:`Scheduler.load` rebuilds the memory from what was
committed, so no event is skipped and none is applied twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiflow_nb.events import EventLog
from aiflow_nb.scheduler import inputs
from aiflow_nb.scheduler.core import Core
from aiflow_nb.scheduler.emitted import Emitted
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry
from aiflow_nb.scheduler.state import ExecutionState
from aiflow_nb.scheduler.store import Store
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskAction, Workflow
from aiflow_nb.workflow.records import Outcome

log = logging.getLogger("aiflow_nb.scheduler")

CHECKPOINT_EVERY = 1.0
#: A batch reads at most ``limit`` events from at most this many times ``limit`` offsets.
SKIP_WINDOW = 8


class Scheduler(Core):
    """Rules and state of every workflow in one database."""

    store: Store

    def __init__(self, db: Database, log_: EventLog, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.log = log_
        self.store = Store(db)
        self.clock = clock
        self.outbox = Outbox()
        self.load()
        db.on_rollback(self.load)

    # -- inputs: the clock is read here, once per input ----------------------------

    def submit(self, workflow: Workflow) -> int:
        digest = workflow.digest()
        version: int = self.take(inputs.Submit(workflow.namespace, workflow.name, digest, workflow), self.clock())
        return version

    def set_paused(self, namespace: str, name: str, paused: bool) -> None:
        self.registry.info(namespace, name)  # a missing workflow is refused before anything is recorded
        self.take(inputs.SetPaused(namespace, name, paused), self.clock())

    def delete(self, namespace: str, name: str) -> None:
        self.take(inputs.Delete(namespace, name), self.clock())

    def start_execution(self, namespace: str, name: str, parameters: dict[str, Any] | None = None) -> int:
        execution_id: int = self.take(inputs.StartExecution(namespace, name, parameters), self.clock())
        return execution_id

    def stop_execution(self, execution_id: int) -> None:
        self.take(inputs.StopExecution(execution_id), self.clock())

    def task_action(
        self, execution_id: int, task: str, action: TaskAction, parameters: dict[str, Any] | None = None
    ) -> None:
        self.take(inputs.TaskCommand(execution_id, task, action, parameters), self.clock())

    def mark_running(self, te_id: int, attempt: int) -> None:
        """It is about to be launched (right after this transaction commits)."""
        self.take(inputs.Dispatch(te_id, attempt), self.clock())

    def finished(self, outcome: Outcome) -> None:
        """Record how a run ended (once: a repeated report changes nothing)."""
        self.take(inputs.Finished.of(outcome), self.clock())

    def tick(self, now: datetime, wall: datetime | None = None) -> None:
        """Timeouts, retries and schedules due at ``now``; cron schedules at ``wall`` if given."""
        self.take(inputs.Clock(wall.isoformat() if wall is not None and wall != now else None), now)

    # -- memory --------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory state from what is committed."""
        store = self.store
        self._checkpoint_written = time.monotonic()
        self.reset(
            Registry(lambda key: store.spec(*key), store.workflows()),
            store.checkpoint(),
            store.max_ids(),
            store.pending_launches(),
            store.last_ticks(),
        )
        for record in store.running_executions():
            self._track(ExecutionState(record))
        ids = list(self.running)
        for te in store.task_executions_of(ids):
            self.running[te.execution_id].latest[te.task] = te
        self.states = store.condition_states([0, *ids])
        for ex_id, count in store.unseen_status_events(self.checkpoint, ids).items():
            self.running[ex_id].unseen = count
        for te in store.alive_task_executions():
            ex = self.running.get(te.execution_id)
            self.alive[te.id] = ex.latest[te.task] if ex and te.task in ex.latest else te
            self._watch_time(self.alive[te.id])

    # -- the batch ---------------------------------------------------------------

    def commit(self, force: bool = False, checkpoint: bool = True) -> bool:
        """Write this batch; call inside the caller's open transaction.  True if it wrote.

        A batch that only moved the checkpoint (its events matched nothing,
        or changed nothing) or marked launches sent is not written at once:
        the next write carries it, and at most ``CHECKPOINT_EVERY`` seconds
        pass.  After a crash those events are read again against the very
        state they saw, so they change nothing again, and those launches are
        sent again, which their run folder's claim makes harmless: still
        exactly once, at a fraction of the commits.

        ``checkpoint=False`` leaves the checkpoint for a later call in the same
        transaction (one write of it however many rounds the transaction has).
        """
        self.changes.launched.extend(self.outbox.take_sent())
        now = time.monotonic()
        if (
            not force
            and not self.events
            and self.changes.only_checkpoint()
            and (not checkpoint or now - self._checkpoint_written < CHECKPOINT_EVERY)
        ):
            return False
        carried = None
        if not checkpoint:
            carried, self.changes.checkpoint = self.changes.checkpoint, None
        if self.changes.checkpoint is not None:
            self._checkpoint_written = now
        if self.events:
            self.log.stage(self.events.encoded(), self.events.idempotency_keys())
        self.store.flush(self.changes)
        self.changes = self.changes.carrying(carried)
        self.events = Emitted()
        return True

    def consume(self, limit: int, just_appended: bool = False) -> int:
        """Apply the rules to the events after the checkpoint; return how far it moved.

        Only events some rule or trigger names, schedule ticks and scoped
        events are read (at most ``limit``); the others change nothing, so
        the checkpoint passes over them unread.  ``just_appended``: this
        transaction has just appended; if that is all that is new, take the
        events from the log's memory instead of reading them back.
        """
        latest = self.log.latest_offset()
        if latest <= self.checkpoint:
            return 0
        wanted = self.registry.wanted_keys()
        fresh, offsets = self.log.fresh(wanted) if just_appended else ([], range(0))
        if offsets and offsets.start == self.checkpoint + 1 and offsets[-1] == latest:
            events, end = fresh, latest
        else:
            # A bounded window: DuckDB scans all of it, and a long backlog of
            # wanted events would otherwise be scanned again at every batch.
            until = min(latest, self.checkpoint + SKIP_WINDOW * limit)
            events, end = self.log.read_wanted(self.checkpoint, until, wanted, limit)
        for event in events:
            self.process(event)
        moved, self.checkpoint = end - self.checkpoint, end
        self.changes.checkpoint = end
        return moved
