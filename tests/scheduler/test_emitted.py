"""The scheduler's own events reach the log exactly as the log's checks would encode them."""

from __future__ import annotations

import json

import pytest

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import encode_many
from aiflow_nb.scheduler.emitted import encode_emitted
from aiflow_nb.scheduler.state import cause


def _status(namespace: str = "default", workflow: str = "w", error: str | None = None, sender: str = "1/t/1") -> Event:
    value = {
        "workflow": workflow, "execution_id": 1, "task": "t", "seq": 1, "attempt": 1,
        "task_execution_id": 3, "status": "FAILED" if error else "QUEUED", "error": error,
    }  # fmt: skip
    return Event(event_keys.TASK_STATUS, value, namespace=namespace, sender=sender, context={"execution_id": 1})


def test_status_and_other_events_are_encoded_as_the_log_encodes_them() -> None:
    events = [
        _status(),
        Event(
            event_keys.EXECUTION_STATUS,
            {"workflow": "w", "execution_id": 1, "version": 2, "status": "RUNNING"},
            sender="1",
            context={"execution_id": 1},
        ),
        _status(error="boom: \u00e9\u4e2d"),
        _status(workflow="caf\u00e9", namespace="team"),
        Event(event_keys.TASK_FAILED, {"task": "t", "error": "x" * 5000}, sender="w/t"),
        Event("aiflow.schedule.tick", {"workflow": "w", "task": None}, sender="aiflow.schedule"),
    ]
    for cut in range(len(events) + 1):
        assert encode_emitted(events[:cut]) == encode_many(events[:cut])


def test_a_status_event_with_a_bad_namespace_is_refused_as_the_log_refuses_it() -> None:
    with pytest.raises(InvalidEventError, match="namespace"):
        encode_emitted([_status(namespace=" ")])
    with pytest.raises(InvalidEventError):
        encode_emitted([_status(sender="1/t/" + "x" * 2000)])


@pytest.mark.parametrize("rule", ["default/w:trigger#1", "t#1", 'caf\u00e9/"q"\\:trigger#2', "schedule"])
@pytest.mark.parametrize("offset", [None, 0, 7, 10**12])
def test_a_rule_cause_is_the_same_json_however_it_is_written(offset: int | None, rule: str) -> None:
    assert cause(event=offset, rule=rule) == json.dumps(
        {"event": offset, "rule": rule}, sort_keys=True, separators=(",", ":")
    )


def test_status_events_kept_as_values_read_and_encode_as_the_events_they_stand_for() -> None:
    from aiflow_nb.scheduler.emitted import Emitted
    from aiflow_nb.scheduler.state import execution_status_event_of, task_status_event_of

    task = ("team", "w", 4, "t", 2, 1, 9, "QUEUED", None)
    failed = ("team", "w", 4, "t", 2, 3, 9, "FAILED", "boom \u00e9")
    execution = ("team", "w", 4, 3, "RUNNING")
    tick = Event("aiflow.schedule.tick", {"workflow": "w"}, sender="aiflow.schedule")
    emitted = Emitted()
    emitted.task_status(task)
    emitted.append((tick, "tick:team/w//2026"))
    emitted.execution_status(execution)
    emitted.task_status(failed)
    emitted.insert(0, (tick, None))
    expected = [
        (tick, None),
        (task_status_event_of(*task), None),
        (tick, "tick:team/w//2026"),
        (execution_status_event_of(*execution), None),
        (task_status_event_of(*failed), None),
    ]
    assert list(emitted) == expected and len(emitted) == 5
    assert emitted.idempotency_keys() == [k for _, k in expected]
    assert emitted.encoded() == encode_many([e for e, _ in expected])
    emitted.clear()
    assert not emitted and list(emitted) == []
