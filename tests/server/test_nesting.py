"""Issue 26, item 2: event values nest to a bounded depth, and no stored row can break a listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Workflow, errors
from aiflow_nb.engine import Engine
from aiflow_nb.events.event import MAX_VALUE_DEPTH, EncodedEvents
from aiflow_nb.events.log import EventLog
from aiflow_nb.home import database_path
from aiflow_nb.server.handlers.records import UNSHOWN
from tests.conftest import RunningService
from tests.server import call, wait

PREFIX = "/api/v1"


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"v": value}
    return value


def test_a_value_nested_past_the_limit_is_refused_with_400_in_every_form(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    deep, fine = nested(MAX_VALUE_DEPTH + 1), nested(MAX_VALUE_DEPTH)
    single = call(url, "POST", PREFIX + "/events", {"key": "deep", "value": deep}, token=token)
    batch = call(
        url, "POST", PREFIX + "/events", {"events": [{"key": "ok"}] * 5 + [{"key": "deep", "value": deep}]}, token=token
    )
    context = call(url, "POST", PREFIX + "/events", {"key": "deep", "context": {"c": deep}}, token=token)
    lines = call(
        url,
        "POST",
        PREFIX + "/events",
        raw_body=b'{"key":"ok"}\n' + json.dumps({"key": "deep", "value": deep}).encode() + b"\n",
        token=token,
        headers={"Content-Type": "application/x-ndjson"},
    )
    for response, where in ((single, "event 'deep'"), (batch, "event 5: "), (context, "context"), (lines, "line 2")):
        assert response.status == 400, response
        error = response.error()
        assert error["code"] == "value_too_deep", error
        assert str(MAX_VALUE_DEPTH) in error["message"] and where in error["message"], error
    assert service.client().events() == []  # nothing of the refused requests was stored
    assert call(url, "POST", PREFIX + "/events", {"key": "fine", "value": fine}, token=token).status == 200


def test_the_engine_refuses_it_too(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "home")
    try:
        with pytest.raises(errors.ValueTooDeepError, match=f"limit of {MAX_VALUE_DEPTH} levels"):
            engine.send_event("deep", nested(MAX_VALUE_DEPTH + 1))
        assert engine.events() == []
    finally:
        engine.close()


def test_a_stored_row_too_deep_to_encode_does_not_break_the_listings(service: RunningService) -> None:
    # A value stored before the limit existed (staged as the log takes checked events), 500 levels
    # deep: it starts an execution, whose records then hold it.
    with Workflow("deep") as wf:
        BashTask("t", command="true")
    wf.trigger_on("deep")
    client = service.client()
    client.submit(wf)
    service.stop()
    log = EventLog(database_path(service.home))
    with log.db.transaction():
        log.stage(EncodedEvents(["deep"], [json.dumps(nested(500))], ["default"], [None], [None]))
    log.db.close()
    restarted = RunningService(service.home).start()
    try:
        url, token = restarted.info.url, restarted.info.token

        def listed(path: str) -> dict[str, object]:
            response = call(url, "GET", PREFIX + path, token=token)
            assert response.status == 200, (path, response.status, response.body[:300])
            data: dict[str, object] = response.json()
            return data

        executions = wait(lambda: listed("/executions")["executions"], 60, "the deep event's execution")
        execution = executions[0]  # type: ignore[index]
        assert execution["workflow"] == "deep" and execution["event"]["key"] == "deep"
        assert execution["event"]["value"] == UNSHOWN
        execution_id = execution["id"]
        assert listed(f"/executions/{execution_id}")["event"]["value"] == UNSHOWN  # type: ignore[index]
        workflows = listed("/workflows")["workflows"]
        assert workflows[0]["latest_execution"]["event"]["value"] == UNSHOWN  # type: ignore[index]
        runs = wait(lambda: listed(f"/executions/{execution_id}/tasks")["task_executions"], 60, "its task run")
        listed(f"/task-executions/{runs[0]['id']}")  # type: ignore[index]
        # The client's own listing (what `aiflow-nb workflow list` shows) works again.
        assert [e.workflow for e in restarted.client().executions()] == ["deep"]
    finally:
        restarted.stop()
