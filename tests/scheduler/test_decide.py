"""The decision core decides without changing the state it is given, the same way each time.

Random workloads (the workflows and inputs of :mod:`.workloads`)
run on a real engine; then the engine's log is replayed through a core that,
for every event and recorded input, snapshots its state, decides twice,
checks that the state is as it was and both decisions are equal, and only
then applies them.  What the applied decisions build must be what the
engine stored (``verify``'s comparison), and the engine's own memory must be
what a reload from its database gives.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from aiflow_nb import Event
from aiflow_nb.scheduler import inputs, rerun, rows
from aiflow_nb.scheduler.core import Core, decide
from aiflow_nb.scheduler.decisions import Decisions
from aiflow_nb.workflow import Workflow
from tests.scheduler.workloads import OPS, engine_after, workflows


def fields(record: Any) -> dict[str, Any]:
    """A record's fields by name (``stop_reason`` included)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def snapshot(core: Core, with_time: bool = True) -> dict[str, Any]:
    """Every value of the state, copied (records as their fields, ``stop_reason`` included)."""
    taken = {
        "running": {
            i: (fields(ex.record), {t: fields(te) for t, te in ex.latest.items()}, ex.unseen)
            for i, ex in core.running.items()
        },
        "alive": {i: fields(te) for i, te in core.alive.items()},
        "timed": sorted(core.timed),
        # A reload loads the condition state of the triggers and the running executions only.
        "states": {k: v for k, v in core.states.items() if with_time or k[0] == 0 or k[0] in core.running},
        "by_version": {k: v for k, v in core.by_version.items() if v},
        "ids": (core.last_execution_id, core.last_task_id),
        "last_ticks": core.last_ticks,
        "workflows": {k: vars(v) for k, v in core.registry.workflows.items()},
    }
    if with_time:  # a reload leaves out the time, the memo of due times and the checkpoint not yet written
        taken.update(now=core.now, next_due=core.next_due, checkpoint=core.checkpoint)
    return copy.deepcopy(taken)


class CheckedCore(Core):
    """A core whose every decision is checked: the state left as it was, the same decisions twice."""

    decided = 0

    def _decide_twice(self, inp: Event | inputs.Input, now: datetime | None) -> Decisions | None:
        before = snapshot(self)
        try:
            first = decide(self, inp, now)
        except Exception:
            assert snapshot(self) == before, f"a refused {inp!r} changed the state"
            raise
        assert snapshot(self) == before, f"deciding {inp!r} changed the state"
        assert decide(self, inp, now) == first, f"{inp!r} decided twice differently"
        assert snapshot(self) == before
        self.decided += 1
        return first

    def process(self, event: Event) -> None:
        decided = self._decide_twice(event, None)
        assert decided is not None
        self.apply(decided)

    def take(self, inp: inputs.Input, now: datetime) -> Any:
        decided = self._decide_twice(inp, now)
        assert decided is not None
        self.apply(decided)
        return decided.answer


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(made=workflows(), ops=OPS)
def test_deciding_leaves_the_state_as_it_was_and_applying_gives_what_the_engine_stored(
    tmp_path_factory: pytest.TempPathFactory, made: list[Workflow], ops: list[tuple[str, int, int]]
) -> None:
    with engine_after(Path(tmp_path_factory.mktemp("home")), made, ops) as engine:
        scheduler = engine.scheduler
        with engine.db.lock:
            in_memory = snapshot(scheduler, with_time=False)
            scheduler.load()
            assert snapshot(scheduler, with_time=False) == in_memory, "memory after the decisions != a reload"
            store = scheduler.store
            recorded = [inputs.from_value(offset, value) for offset, value in store.recorded_inputs()]
            specs = store.all_specs()
            checked = CheckedCore()
            again = rerun.Rerun(specs, recorded, checked)
            again.feed(store.rule_events(rerun.wanted_keys(specs)))
            core = again.finish()
            assert again.differences == []
            assert checked.decided > 0
            found = [
                *rows.compare_executions(core.changes.executions, store.all_executions()),
                *rows.compare_runs(core.changes.tasks, store.all_task_executions()),
                *rows.compare_states(core.states, store.all_condition_states()),
            ]
            assert found == []
