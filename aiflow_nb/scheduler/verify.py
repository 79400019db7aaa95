"""``verify``: replay the log from offset 0 and compare the implied state with the stored one.

The log is replayed twice over: its status events through the transition
tables (:mod:`.replay`: the log's own breaks, such as a seq that skips),
and every event and recorded input through the decision core itself
(:mod:`.rerun`: rules, conditions and timers included); the rows, condition
state and schedule ticks the core ends with are compared field by field
with the stored ones.

:func:`check` reads through a :class:`Store` (the engine's own connection,
under its lock); :func:`check_home` opens a home's database read-only, for
a home whose service is not running, and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from aiflow_nb.errors import AiflowError, StorageError
from aiflow_nb.home import database_path
from aiflow_nb.scheduler import inputs, replay, rerun, rows
from aiflow_nb.scheduler.replay import Difference
from aiflow_nb.scheduler.store import Store
from aiflow_nb.storage import Database

log = logging.getLogger("aiflow_nb.scheduler.verify")


@dataclass(frozen=True)
class Report:
    """What ``verify`` found: how much it read, and every difference."""

    events: int
    executions: int
    task_runs: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        if self.consistent:
            return [f"consistent: {self.events} events, {self.executions} executions, {self.task_runs} task runs"]
        return [str(d) for d in self.differences] + [
            f"inconsistent: {len(self.differences)} difference(s) in {self.events} events, "
            f"{self.executions} executions, {self.task_runs} task runs"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "events": self.events,
            "executions": self.executions,
            "task_runs": self.task_runs,
            "differences": [d.to_dict() for d in self.differences],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            events=int(data["events"]),
            executions=int(data["executions"]),
            task_runs=int(data["task_runs"]),
            differences=[Difference(**d) for d in data.get("differences") or []],
        )


def check(store: Store) -> Report:
    """Replay the log and compare with the stored rows (the caller holds the database's lock)."""
    implied = replay.fold(store.status_events())
    differences = list(implied.broken)
    recorded = []
    for offset, value in store.recorded_inputs():
        try:
            recorded.append(inputs.from_value(offset, value))
        except (KeyError, TypeError, ValueError) as exc:
            differences.append(Difference(f"event {offset}", "input", str(value), f"an input ({exc!r})"))
    specs = store.all_specs()
    again = rerun.Rerun(specs, recorded)
    again.feed(store.rule_events(rerun.wanted_keys(specs)))
    core = again.finish()
    differences.extend(again.differences)
    executions = store.all_executions()
    runs = store.all_task_executions()
    differences.extend(rows.compare_executions(core.changes.executions, executions))
    differences.extend(rows.compare_runs(core.changes.tasks, runs))
    differences.extend(rows.compare_causes(core.changes.causes, store.all_causes()))
    differences.extend(rows.compare_states(core.states, store.all_condition_states()))
    differences.extend(rows.compare_ticks(core.last_ticks, store.last_ticks()))
    differences.extend(rows.compare_workflows(again.rows.workflows, store.workflows()))
    return Report(store.event_count(), len(executions), len(runs), differences)


def check_home(home: Path) -> Report:
    """Verify a home whose service is not running, reading its database read-only.

    Raises :class:`StorageError` (one line) for a path that is not a home, a
    damaged database, one of a newer schema, or one in use by another process.
    """
    if not home.is_dir():
        raise StorageError(f"{home} is not an aiflow-nb home (no such folder)")
    path = database_path(home)
    if not path.is_file():
        raise StorageError(f"{home} is not an aiflow-nb home (it has no {path.name})")
    try:
        db = Database(path, read_only=True)
    except duckdb.Error as exc:
        raise _unreadable(path, exc) from None
    try:
        db.verify()  # every block read: damage shows here, not as a half-done comparison
        return check(Store(db))
    except duckdb.Error as exc:
        raise _unreadable(path, exc) from None
    finally:
        db.close()


def _unreadable(path: Path, exc: duckdb.Error) -> AiflowError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "lock" in first.lower():
        return StorageError(f"the database {path} is in use by another process ({first})")
    return StorageError(f"the database {path} is damaged or not an aiflow-nb database ({first})")
