"""REST API v1 through a real service: a round trip of each endpoint, bad input, batches and concurrency."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest

from aiflow_nb import BashTask, Event, NotebookTask, Workflow, errors
from aiflow_nb.client import CHUNK_EVENTS, Client
from aiflow_nb.events import MAX_VALUE_BYTES
from aiflow_nb.server.app import PREFIX
from aiflow_nb.workflow.graph import STATUS_COLORS
from tests.conftest import RunningService
from tests.server import (
    call,
    latest_runs,
    stored_state,
    wait_execution,
    wait_for_file,
    wait_task,
    write_notebook,
)

SVG = "{http://www.w3.org/2000/svg}"
NDJSON = {"Content-Type": "application/x-ndjson"}


def node_fills(svg: str) -> dict[str, str]:
    """Fill color of each filled node (the tasks) of a graphviz SVG, by the node's title."""
    fills = {}
    for group in ET.fromstring(svg).iter(SVG + "g"):
        if group.get("class") != "node":
            continue
        title = group.find(SVG + "title")
        assert title is not None and title.text
        shapes = [el.get("fill", "") for el in group.iter() if el.tag in (SVG + "path", SVG + "polygon")]
        fills[title.text] = shapes[0] if shapes else "none"
    return fills


# -- round trip ---------------------------------------------------------------------------


def test_round_trip_of_each_endpoint(service: RunningService, tmp_path: Path) -> None:
    client = service.client()
    source = write_notebook(tmp_path / "greet.ipynb", "print(f'hello {who}')", parameters="who = 'nobody'")

    def build(who: str) -> Workflow:
        with Workflow("roundtrip") as wf:
            NotebookTask("nb", notebook=source, parameters={"who": who})
            waiter = BashTask("waiter", command=f"echo waiting-$AIFLOW_NB_SEQ; {wait_for_file(tmp_path / 'never')}")
            waiter.action_on_event_received("START", "go")
        return wf

    # Submit: a new spec is a new version, the same spec is not.
    assert client.submit(build("nobody")) == 1
    assert client.submit(build("nobody")) == 1
    assert client.submit(build("world")) == 2
    with Workflow("other", namespace="team") as other:
        BashTask("t", command="echo other")
    assert client.submit(other) == 1

    # List and show (with the spec, which rebuilds the same workflow).
    listed = {(w.namespace, w.name): w for w in client.workflows()}
    assert set(listed) == {("default", "roundtrip"), ("team", "other")}
    assert listed["default", "roundtrip"].version == 2 and listed["default", "roundtrip"].paused is False
    assert listed["default", "roundtrip"].latest_execution is None
    assert client.workflow_info("roundtrip").version == 2
    assert client.workflow("roundtrip") == build("world")
    assert client.workflow("other", "team").namespace == "team"

    # Pause / resume.
    client.pause("roundtrip")
    assert client.workflow_info("roundtrip").paused is True
    assert [w.paused for w in client.workflows() if w.name == "other"] == [False]
    client.resume("roundtrip")
    assert client.workflow_info("roundtrip").paused is False

    # Start executions; the one of "other" ends on its own.
    ex = client.start_execution("roundtrip")
    other_ex = client.start_execution("other", "team")
    assert ex != other_ex
    wait_execution(client, other_ex, "SUCCESS")
    nb_run = wait_task(client, ex, "nb", "SUCCESS", timeout=120)
    shown_ex = client.execution(ex)
    assert (shown_ex.id, shown_ex.workflow, shown_ex.namespace, shown_ex.version) == (ex, "roundtrip", "default", 2)
    assert shown_ex.status.value == "RUNNING"  # "waiter" still waits for "go"
    latest = client.workflow_info("roundtrip").latest_execution
    assert latest is not None and latest.id == ex

    # List with filters.
    assert [e.id for e in client.executions()] == [ex, other_ex]
    assert [e.id for e in client.executions(workflow="roundtrip")] == [ex]
    assert [e.id for e in client.executions(namespace="team")] == [other_ex]
    assert [e.id for e in client.executions(status="SUCCESS")] == [other_ex]
    assert [e.id for e in client.executions(status="RUNNING")] == [ex]
    assert client.executions(workflow="roundtrip", status="SUCCESS") == []
    assert client.executions(workflow="other", namespace="default") == []
    assert [e.id for e in client.executions(limit=1)] == [other_ex]  # the newest

    # Task list, then start / stop / restart by hand.
    assert [(t.task, t.seq, t.status.value) for t in client.task_executions(ex)] == [("nb", 1, "SUCCESS")]
    started = client.start_task(ex, "waiter")
    assert [(t.task, t.seq) for t in started] == [("waiter", 1)]
    first = wait_task(client, ex, "waiter", "RUNNING")
    assert client.start_task(ex, "waiter")[-1].seq == 1  # START on a running task is ignored

    # The graph colors each task by its latest status.
    svg = client.graph_svg("roundtrip")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    fills = node_fills(svg)
    assert fills["nb"] == STATUS_COLORS["SUCCESS"]
    assert fills["waiter"] == STATUS_COLORS["RUNNING"]
    graph = call(service.info.url, "GET", PREFIX + "/workflows/default/roundtrip/graph", token=service.info.token)
    assert graph.content_type.startswith("image/svg+xml")
    assert node_fills(client.graph_svg("other", "team")) == {"t": STATUS_COLORS["SUCCESS"]}

    client.stop_task(ex, "waiter")
    wait_task(client, ex, "waiter", "STOPPED")
    assert client.execution(ex).status.value == "RUNNING"
    assert node_fills(client.graph_svg("roundtrip"))["waiter"] == STATUS_COLORS["STOPPED"]
    client.restart_task(ex, "waiter")
    wait_task(client, ex, "waiter", "RUNNING", seq=2)
    client.restart_task(ex, "waiter")  # on a running task: stops seq 2, then starts seq 3
    wait_task(client, ex, "waiter", "RUNNING", seq=3)
    assert [t.status.value for t in client.task_executions(ex) if t.task == "waiter"] == [
        "STOPPED",
        "STOPPED",
        "RUNNING",
    ]

    # One task execution: show, log, notebook.
    assert client.task_execution(nb_run.id) == nb_run
    assert client.task_execution(first.id).task == "waiter"
    assert "waiting-1" in client.task_log(first.id)
    assert "hello world" in client.task_log(nb_run.id)  # papermill logs each cell's output
    notebook = nbformat.reads(json.dumps(client.task_notebook(nb_run.id)), as_version=4)
    outputs = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "hello world" in outputs
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "world" in injected[0].source
    with pytest.raises(errors.NotFoundError, match="no executed notebook"):
        client.task_notebook(first.id)  # a bash task

    # Stop the execution: its running task stops too.
    stopped = client.stop_execution(ex)
    assert stopped.id == ex
    wait_execution(client, ex, "STOPPED")
    wait_task(client, ex, "waiter", "STOPPED", seq=3)
    assert {t.task: t.status.value for t in latest_runs(client, ex).values()} == {"nb": "SUCCESS", "waiter": "STOPPED"}

    # Delete: the workflow is gone, its history stays.
    client.delete_workflow("roundtrip")
    assert [w.name for w in client.workflows()] == ["other"]
    with pytest.raises(errors.NotFoundError):
        client.workflow("roundtrip")
    assert client.execution(ex).status.value == "STOPPED"
    assert len(client.task_executions(ex)) == 4


# -- bad input ----------------------------------------------------------------------------


def good_workflow() -> Workflow:
    with Workflow("good") as wf:
        BashTask("first", command="echo first")
        waiter = BashTask("waiter", command="echo waited")
        waiter.action_on_event_received("START", "go")
    return wf


@pytest.fixture
def busy(service: RunningService, tmp_path: Path) -> dict[str, Any]:
    """Events, a RUNNING execution (waiting for "go") and a finished one; nothing changes by itself."""
    client = service.client()
    client.submit(good_workflow())
    with Workflow("once") as once:
        BashTask("t", command="true")
    client.submit(once)
    client.send_event("noise", {"n": 1})
    client.send_events([__import__("aiflow_nb").Event("noise", 2, sender="me")])
    running = client.start_execution("good")
    finished = client.start_execution("once")
    wait_execution(client, finished, "SUCCESS")
    bash_run = wait_task(client, running, "first", "SUCCESS")
    nb = write_notebook(tmp_path / "bad.ipynb", "1")
    return {"client": client, "running": running, "finished": finished, "bash_run": bash_run.id, "nb": nb}


def spec_with(change: Any) -> dict[str, Any]:
    spec = good_workflow().to_spec()
    change(spec)
    return spec


def bad_inputs(busy: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], int, str]]:
    """(what, method, path, request kwargs, status, error code)."""
    running, finished, bash_run = busy["running"], busy["finished"], busy["bash_run"]

    def set_rule(spec: dict[str, Any], condition: dict[str, Any]) -> None:
        spec["tasks"][1]["rules"][0]["condition"] = condition

    def set_notebook(spec: dict[str, Any], notebook: Any) -> None:
        with Workflow("good") as wf:
            NotebookTask("nb", notebook=busy["nb"])
        spec["tasks"].append(wf.to_spec()["tasks"][0])
        spec["tasks"][-1]["notebook"] = notebook

    def set_schedule(spec: dict[str, Any], **schedule: Any) -> None:
        spec["tasks"][0]["schedule"] = {"cron": None, "interval": None, "timezone": "UTC", **schedule}

    unknown_task = spec_with(
        lambda s: s["tasks"][1]["rules"].append(
            {"action": "START", "condition": {"type": "task_status", "statuses": {"ghost": "SUCCESS"}}}
        )
    )
    huge = "x" * MAX_VALUE_BYTES
    wf = PREFIX + "/workflows"
    ev = PREFIX + "/events"
    ex = PREFIX + "/executions"
    te = PREFIX + "/task-executions"
    return [
        # Workflow specs.
        ("spec that is not JSON", "POST", wf, {"raw_body": b"{'name': 'good'"}, 400, "invalid_json"),
        ("spec that is a list", "POST", wf, {"body": [1, 2]}, 400, "invalid_spec"),
        ("spec without tasks", "POST", wf, {"body": {"name": "good"}}, 400, "invalid_spec"),
        ("spec with tasks of the wrong type", "POST", wf, {"body": spec_with(lambda s: s.update(tasks="x"))}, 400,
         "invalid_spec"),
        ("spec with an empty name", "POST", wf, {"body": spec_with(lambda s: s.update(name=""))}, 400,
         "invalid_spec"),
        ("spec of an unknown task kind", "POST", wf,
         {"body": spec_with(lambda s: s["tasks"][0].update(kind="teleport"))}, 400, "unknown_operator"),
        ("empty body as a spec", "POST", wf, {}, 400, "invalid_spec"),
        ("rule on an unknown task", "POST", wf, {"body": unknown_task}, 400, "unknown_task"),
        ("unknown condition import path", "POST", wf, {"body": spec_with(lambda s: set_rule(
            s, {"type": "custom", "class": "no_such_module.deep:Cond", "params": {}}))}, 400, "unknown_condition"),
        ("condition path that is not a condition", "POST", wf, {"body": spec_with(lambda s: set_rule(
            s, {"type": "custom", "class": "tests.workflow.conds:NotACondition", "params": {}}))}, 400,
         "unknown_condition"),
        ("invalid notebook embedded", "POST", wf,
         {"body": spec_with(lambda s: set_notebook(s, {"cells": "nope"}))}, 400, "invalid_notebook"),
        ("notebook that is a string", "POST", wf, {"body": spec_with(lambda s: set_notebook(s, "not a notebook"))},
         400, "invalid_spec"),
        ("bad cron", "POST", wf, {"body": spec_with(lambda s: set_schedule(s, cron="every full moon"))}, 400,
         "invalid_schedule"),
        ("bad time zone", "POST", wf,
         {"body": spec_with(lambda s: set_schedule(s, cron="0 * * * *", timezone="Mars/Olympus"))}, 400,
         "invalid_schedule"),
        ("negative interval", "POST", wf, {"body": spec_with(lambda s: set_schedule(s, interval=-5))}, 400,
         "invalid_schedule"),
        # Events.
        ("event body that is not JSON", "POST", ev, {"raw_body": b'{"key": '}, 400, "invalid_json"),
        ("empty event key", "POST", ev, {"body": {"key": ""}}, 400, "invalid_event"),
        ("no event key", "POST", ev, {"body": {"value": 1}}, 400, "invalid_event"),
        ("event key that is a number", "POST", ev, {"body": {"key": 5}}, 400, "invalid_event"),
        ("empty event namespace", "POST", ev, {"body": {"key": "k", "namespace": ""}}, 400, "invalid_event"),
        ("unknown event field", "POST", ev, {"body": {"key": "k", "colour": "red"}}, 400, "invalid_event"),
        ("event with an offset", "POST", ev, {"body": {"key": "k", "offset": 3}}, 400, "invalid_event"),
        ("event context that is not an object", "POST", ev, {"body": {"key": "k", "context": "x"}}, 400,
         "invalid_event"),
        ("event body that is a list", "POST", ev, {"body": [{"key": "k"}]}, 400, "invalid_event"),
        ("empty event body", "POST", ev, {}, 400, "invalid_event"),
        ("empty idempotency key", "POST", ev, {"body": {"key": "go", "idempotency_key": ""}}, 400, "invalid_event"),
        ("idempotency key that is a number", "POST", ev, {"body": {"key": "go", "idempotency_key": 7}}, 400,
         "invalid_event"),
        ("oversized value", "POST", ev, {"body": {"key": "huge", "value": huge}}, 413, "event_too_large"),
        ("oversized value in a batch", "POST", ev, {"body": {"events": [{"key": "go"}, {"key": "h", "value": huge}]}},
         413, "event_too_large"),
        ("empty batch", "POST", ev, {"body": {"events": []}}, 400, "invalid_event"),
        ("batch that is not a list", "POST", ev, {"body": {"events": {"key": "go"}}}, 400, "invalid_event"),
        ("batch with one bad event", "POST", ev, {"body": {"events": [{"key": "go"}, {"key": ""}]}}, 400,
         "invalid_event"),
        ("blank Idempotency-Key header", "POST", ev, {"body": {"key": "go"}, "headers": {"Idempotency-Key": " "}},
         400, "invalid_event"),
        ("Idempotency-Key header and a key per event", "POST", ev,
         {"body": {"events": [{"key": "go", "idempotency_key": "e-1"}]}, "headers": {"Idempotency-Key": "r-1"}},
         400, "invalid_event"),
        ("event body nested too deeply", "POST", ev, {"raw_body": b'{"key": "k", "value": ' + b"[" * 100_000}, 400,
         "invalid_json"),
        ("value with a lone surrogate", "POST", ev, {"raw_body": b'{"key":"k","value":["ok","\\ud800"]}'}, 400,
         "invalid_event"),
        ("key with a lone surrogate", "POST", ev, {"raw_body": b'{"key":"k\\udc80"}'}, 400, "invalid_event"),
        ("context with a lone surrogate", "POST", ev, {"raw_body": b'{"key":"k","context":{"a":"\\udfff"}}'}, 400,
         "invalid_event"),
        ("batch with a lone surrogate in its 6th value", "POST", ev,
         {"raw_body": b'{"events":[' + b'{"key":"k","value":1},' * 5 + b'{"key":"k","value":"\\ud83d"}]}'}, 400,
         "invalid_event"),
        # Events as NDJSON.
        ("NDJSON line with a lone surrogate", "POST", ev,
         {"raw_body": b'{"key":"k","value":1}\n{"key":"k","value":"\\ud800"}\n', "headers": NDJSON}, 400,
         "invalid_event"),
        ("NDJSON line that is not JSON", "POST", ev, {"raw_body": b'{"key": "go"}\n{"key": \n', "headers": NDJSON},
         400, "invalid_event"),
        ("NDJSON line that is not an object", "POST", ev, {"raw_body": b'{"key": "go"}\n[1]\n', "headers": NDJSON},
         400, "invalid_event"),
        ("NDJSON line with a bad key", "POST", ev, {"raw_body": b'{"key":"go","value":1}\n{"key":"","value":1}\n',
         "headers": NDJSON}, 400, "invalid_event"),
        ("NDJSON value NaN", "POST", ev, {"raw_body": b'{"key":"go","value":NaN}\n', "headers": NDJSON}, 400,
         "invalid_event"),
        ("NDJSON value past Python's 4,300 digits", "POST", ev,
         {"raw_body": b'{"key":"go","value":' + b"9" * 5000 + b"}\n", "headers": NDJSON}, 400, "invalid_event"),
        ("NDJSON value that reads as Infinity", "POST", ev,
         {"raw_body": b'{"key":"go","value":{"x":1e400}}\n', "headers": NDJSON}, 400, "invalid_event"),
        ("batch value that reads as Infinity", "POST", ev,
         {"raw_body": b'{"events":[' + b'{"key":"k","value":1},' * 5 + b'{"key":"k","value":-1e400}]}'}, 400,
         "invalid_event"),
        ("NDJSON oversized value", "POST", ev,
         {"raw_body": json.dumps({"key": "h", "value": huge}).encode(), "headers": NDJSON}, 413, "event_too_large"),
        ("NDJSON body that is not UTF-8", "POST", ev, {"raw_body": b'{"key":"\xff"}\n', "headers": NDJSON}, 400,
         "invalid_event"),
        ("NDJSON body without events", "POST", ev, {"raw_body": b"\n\n", "headers": NDJSON}, 400, "invalid_event"),
        # Unknown workflows, executions, task executions.
        ("show an unknown workflow", "GET", wf + "/default/nope", {}, 404, "not_found"),
        ("a workflow in an unknown namespace", "GET", wf + "/elsewhere/good", {}, 404, "not_found"),
        ("delete an unknown workflow", "DELETE", wf + "/default/nope", {}, 404, "not_found"),
        ("pause an unknown workflow", "POST", wf + "/default/nope/pause", {}, 404, "not_found"),
        ("resume an unknown workflow", "POST", wf + "/default/nope/resume", {}, 404, "not_found"),
        ("graph of an unknown workflow", "GET", wf + "/default/nope/graph", {}, 404, "not_found"),
        ("graph by an execution of another workflow", "GET", wf + "/default/good/graph",
         {"params": {"execution": finished}}, 404, "not_found"),
        ("start an unknown workflow", "POST", wf + "/default/nope/executions", {}, 404, "not_found"),
        ("show an unknown execution", "GET", f"{ex}/99999", {}, 404, "not_found"),
        ("stop an unknown execution", "POST", f"{ex}/99999/stop", {}, 404, "not_found"),
        ("tasks of an unknown execution", "GET", f"{ex}/99999/tasks", {}, 404, "not_found"),
        ("start a task of an unknown execution", "POST", f"{ex}/99999/tasks/first/start", {}, 404, "not_found"),
        ("start an unknown task", "POST", f"{ex}/{running}/tasks/ghost/start", {}, 404, "not_found"),
        ("restart an unknown task", "POST", f"{ex}/{running}/tasks/ghost/restart", {}, 404, "not_found"),
        ("unknown task action", "POST", f"{ex}/{running}/tasks/first/explode", {}, 404, "not_found"),
        ("execution id beyond 64 bits", "GET", f"{ex}/{10**30}", {}, 404, "not_found"),
        ("task execution id beyond 64 bits", "GET", f"{te}/{10**30}/log", {}, 404, "not_found"),
        ("show an unknown task execution", "GET", f"{te}/99999", {}, 404, "not_found"),
        ("log of an unknown task execution", "GET", f"{te}/99999/log", {}, 404, "not_found"),
        ("notebook of an unknown task execution", "GET", f"{te}/99999/notebook", {}, 404, "not_found"),
        ("notebook of a bash task", "GET", f"{te}/{bash_run}/notebook", {}, 404, "not_found"),
        # Illegal transitions.
        ("stop a finished execution", "POST", f"{ex}/{finished}/stop", {}, 409, "illegal_transition"),
        ("start a task of a finished execution", "POST", f"{ex}/{finished}/tasks/t/start", {}, 409,
         "illegal_transition"),
        # Query arguments.
        ("since that is not a number", "GET", ev, {"params": {"since": "abc"}}, 400, "invalid_argument"),
        ("limit of zero", "GET", ev, {"params": {"limit": 0}}, 400, "invalid_argument"),
        ("limit too large", "GET", ev, {"params": {"limit": 10**9}}, 400, "invalid_argument"),
        ("unknown execution status", "GET", ex, {"params": {"status": "BOGUS"}}, 400, "invalid_argument"),
        ("execution limit that is not a number", "GET", ex, {"params": {"limit": "ten"}}, 400, "invalid_argument"),
        ("negative execution limit", "GET", ex, {"params": {"limit": -1}}, 400, "invalid_argument"),
        ("graph execution that is not a number", "GET", wf + "/default/good/graph",
         {"params": {"execution": "latest"}}, 400, "invalid_argument"),
        ("stream since that is not a number", "GET", PREFIX + "/stream", {"params": {"since": "x"}}, 400,
         "invalid_argument"),
        # Paths and methods.
        ("unknown API path", "GET", PREFIX + "/nope", {}, 404, "not_found"),
        ("path outside the API", "GET", "/index.html", {}, 404, "not_found"),
        ("another API version", "GET", "/api/v2/health", {}, 404, "not_found"),
        ("workflow name with a space", "GET", wf + "/default/bad%20name", {}, 404, "not_found"),
        ("execution id that is not a number", "GET", f"{ex}/first", {}, 404, "not_found"),
        ("method not allowed", "PUT", ev, {"body": {"key": "go"}}, 405, ""),
        ("delete an execution", "DELETE", f"{ex}/{running}", {}, 405, ""),
    ]  # fmt: skip


def test_each_bad_input_is_a_json_4xx_and_changes_nothing(service: RunningService, busy: dict[str, Any]) -> None:
    client: Client = busy["client"]
    url, token = service.info.url, service.info.token
    before = stored_state(client)
    assert before["events"] and before["executions"] and before["workflows"]
    cases = bad_inputs(busy)
    for what, method, path, kwargs, status, code in cases:
        response = call(url, method, path, token=token, **kwargs)
        assert response.status == status, (what, response.status, response.body[:300])
        error = response.error()
        if code:
            assert error["code"] == code, (what, error)
        assert stored_state(client) == before, f"{what} changed what is stored"
    # The client raises the same error classes, with the service's message.
    with pytest.raises(errors.UnknownTaskError, match="ghost"):
        client.submit(spec_with(lambda s: s["tasks"][1]["rules"][0].update(
            condition={"type": "task_status", "statuses": {"ghost": "SUCCESS"}})))  # fmt: skip
    with pytest.raises(errors.EventTooLargeError, match=str(MAX_VALUE_BYTES)):
        client.send_event("huge", "y" * MAX_VALUE_BYTES)
    with pytest.raises(errors.IllegalTransitionError, match=f"execution {busy['finished']}"):
        client.stop_execution(busy["finished"])
    assert stored_state(client) == before
    # No request was a server error: nothing was logged at ERROR and no traceback.
    log = (service.home / "logs" / "server.log").read_text()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    # The service carries on: "go" starts "waiter" in the running execution, which then succeeds.
    offset = client.send_event("go")
    assert offset == before["events"][-1]["offset"] + 1
    wait_execution(client, busy["running"], "SUCCESS")


# -- batches, idempotency, concurrency -------------------------------------------------------


def test_batch_returns_offsets_in_order(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    items = [{"key": f"batch-{i}", "value": {"i": i}} for i in range(5)]
    response = call(url, "POST", PREFIX + "/events", {"events": items}, token=token)
    assert response.status == 200
    offsets = response.json()["offsets"]
    assert offsets == list(range(offsets[0], offsets[0] + 5))
    stored = service.client().events(since=offsets[0] - 1)
    assert [(e.offset, e.key, e.value) for e in stored] == [
        (o, item["key"], item["value"]) for o, item in zip(offsets, items, strict=True)
    ]
    # A single event answers with one offset, the next one.
    single = call(url, "POST", PREFIX + "/events", {"key": "single"}, token=token)
    assert single.json() == {"offset": offsets[-1] + 1}


def test_a_bad_event_of_a_batch_is_named_by_its_index_and_nothing_is_stored(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    good = {"key": "fine", "value": 1}
    cases = [
        ({"events": [good, good, {"key": " "}]}, 400, "event 2: event key must be a non-empty string"),
        # Past 4 events the batch is first encoded column by column; a bad one is still named.
        ({"events": [good] * 6 + [{"key": "x", "sender": 5}]}, 400, "event 6: event sender must be"),
        ({"events": [good, {"key": "x", "value": "y" * MAX_VALUE_BYTES}]}, 413, "event 1: event 'x': value is"),
        ({"events": [good, {"key": "x", "namespace": ""}]}, 400, "event 1: event namespace must be"),
        ({"events": [{"key": "x", "offset": 3}]}, 400, "event 0: 'offset' is assigned by the log"),
        ({"key": 7}, 400, "event key must be a non-empty string, got 7"),
    ]
    for body, status, message in cases:
        response = call(url, "POST", PREFIX + "/events", body, token=token)
        assert response.status == status, (body, response.body[:300])
        assert response.error()["message"].startswith(message), response.error()
    assert service.client().events() == []


def test_events_sent_as_ndjson_are_read_as_they_stream_in_and_stored(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    parsed = urllib.parse.urlsplit(url)
    lines = [
        json.dumps({"key": "line", "value": {"i": i, "text": "é"}}, ensure_ascii=False).encode() + b"\n"
        for i in range(2500)
    ]
    # Chunks that end inside a line, and one inside a character.
    body = b"".join(lines)
    cut = body.index("é".encode()) + 1
    pieces = [body[:cut], *(body[start : start + 7000] for start in range(cut, len(body), 7000))]
    headers = {"Authorization": f"token {token}", "Idempotency-Key": "stream-1", **NDJSON}

    def post() -> Any:
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
        try:
            conn.request("POST", PREFIX + "/events", body=iter(pieces), headers=headers, encode_chunked=True)
            response = conn.getresponse()
            assert response.status == 200, response.read()
            return json.loads(response.read())["offsets"]
        finally:
            conn.close()

    offsets = post()
    assert offsets == list(range(offsets[0], offsets[0] + 2500))
    assert post() == offsets  # sent again under its Idempotency-Key: nothing appended
    stored = service.client().events(limit=3000)
    assert [(e.offset, e.key, e.value) for e in stored] == [(o, "line", {"i": i, "text": "é"}) for i, o in
                                                             enumerate(offsets)]  # fmt: skip


def test_an_ndjson_body_cut_off_midway_stores_nothing(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    chunk = b'{"key":"cut","value":1}\n' * 100
    request = (
        (
            f"POST {PREFIX}/events HTTP/1.1\r\nHost: x\r\nAuthorization: token {token}\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + f"{len(chunk):x}\r\n".encode()
        + chunk
        + b"\r\n"
    )
    raw_exchange(url, request, read=False)  # closed before the last chunk
    client = service.client()
    first = client.send_event("after")
    assert [(e.offset, e.key) for e in client.events()] == [(first, "after")]


def test_the_client_streams_a_large_batch_and_an_event_it_cannot_encode_stores_nothing(
    service: RunningService,
) -> None:
    client = service.client()
    events = [Event("bulk", {"i": i, "note": "日本"}, sender="loader") for i in range(2 * CHUNK_EVENTS + 1)]
    offsets = client.send_events(events)
    assert offsets == list(range(offsets[0], offsets[0] + len(events)))
    stored = client.events(limit=len(events))
    assert [(e.offset, e.value, e.sender) for e in stored] == [
        (o, e.value, "loader") for o, e in zip(offsets, events, strict=True)
    ]
    # An event past the first chunk that is not JSON-able: raised here, after part of the batch was sent.
    with pytest.raises(errors.InvalidEventError, match=rf"^event {CHUNK_EVENTS + 1} \('bad'\) is not JSON-able"):
        client.send_events([*events[: CHUNK_EVENTS + 1], Event("bad", {1, 2})])
    # None of that batch was appended, and the client carries on.
    assert client.send_event("next") == offsets[-1] + 1
    assert client.send_events([]) == []  # as the engine answers: nothing to append
    assert [e.key for e in client.events(since=offsets[-1])] == ["next"]


def test_repeated_idempotency_key_returns_the_same_offset(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    client = service.client()
    first = client.send_event("once", 1, idempotency_key="k-1")
    assert client.send_event("once", 1, idempotency_key="k-1") == first
    raw = call(url, "POST", PREFIX + "/events", {"key": "once", "value": 1, "idempotency_key": "k-1"}, token=token)
    assert raw.json() == {"offset": first}
    # In a batch: the known key keeps its offset, a key repeated inside the batch is appended once.
    batch = call(
        url,
        "POST",
        PREFIX + "/events",
        {
            "events": [
                {"key": "once", "value": 1, "idempotency_key": "k-1"},  # the same event: a key is its first event's
                {"key": "twice", "idempotency_key": "k-2"},
                {"key": "twice", "idempotency_key": "k-2"},
                {"key": "plain"},
            ]
        },
        token=token,
    ).json()["offsets"]
    assert batch == [first, first + 1, first + 1, first + 2]
    assert [(e.offset, e.key) for e in client.events()] == [(first, "once"), (first + 1, "twice"), (first + 2, "plain")]


def test_a_request_retried_with_its_idempotency_key_header_is_not_doubled(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    items = [{"key": "upload", "value": i} for i in range(3)]

    def post(body: Any, key: str) -> Any:
        return call(url, "POST", PREFIX + "/events", body, token=token, headers={"Idempotency-Key": key})

    first = post({"events": items}, "upload-1")
    assert first.status == 200
    offsets = first.json()["offsets"]
    assert post({"events": items}, "upload-1").json() == {"offsets": offsets}
    single = post({"key": "one"}, "single-1").json()
    assert single == {"offset": offsets[-1] + 1}
    assert post({"key": "one"}, "single-1").json() == single
    # The same key for another number of events is a mistake: 422, nothing stored.
    reused = post({"events": items[:2]}, "upload-1")
    assert reused.status == 422
    assert reused.error()["code"] == "idempotency_key_reused"
    assert "upload-1" in reused.error()["message"]
    stored = service.client().events(since=offsets[0] - 1)
    assert [(e.offset, e.key, e.value) for e in stored] == [
        *((o, "upload", i) for i, o in enumerate(offsets)),
        (single["offset"], "one", None),
    ]
    # The client sends a key of its own with each call (reused only by its retries).
    client = service.client()
    assert client.send_events([Event("row", 1), Event("row", 2)]) == [single["offset"] + 1, single["offset"] + 2]
    assert client.send_event("row", 3) == single["offset"] + 3
    # Keys of some events only: those dedupe, the others are appended again (each under a key of its own).
    mixed = client.send_events([Event("row", 4), Event("row", 5)], ["own-4", None])
    again = client.send_events([Event("row", 4), Event("row", 5)], ["own-4", None])
    assert again[0] == mixed[0] == single["offset"] + 4
    assert again[1] == mixed[1] + 1 == single["offset"] + 6


def test_concurrent_posts_get_distinct_offsets_and_are_all_stored(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    threads_n, per_thread = 8, 25
    acked: dict[tuple[int, int], int] = {}
    refused: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n + 2)

    def produce(t: int) -> None:
        try:
            with Client(url, token) as client:
                start.wait()
                for i in range(per_thread):
                    offset = client.send_event("concurrent", {"t": t, "i": i})
                    with lock:
                        acked[t, i] = offset
        except BaseException as exc:  # reported below
            failures.append(exc)

    def spoil() -> None:
        # Bad requests among the good ones fail alone, never the group they were committed with.
        try:
            start.wait()
            for i in range(per_thread):
                bad = {"key": "concurrent", "idempotency_key": ""} if i % 2 else {"key": "x", "value": "y" * 2**21}
                refused.append(call(url, "POST", PREFIX + "/events", bad, token=token).status)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(threads_n)]
    threads.append(threading.Thread(target=spoil))
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    assert len(acked) == threads_n * per_thread
    assert len(set(acked.values())) == len(acked)
    assert sorted(refused) == [400] * (per_thread // 2) + [413] * (per_thread - per_thread // 2)
    stored = {e.offset: e.value for e in service.client().events(key="concurrent", limit=10_000)}
    assert stored == {offset: {"t": t, "i": i} for (t, i), offset in acked.items()}
    # Each producer's events are in the log in the order it sent them.
    for t in range(threads_n):
        mine = [acked[t, i] for i in range(per_thread)]
        assert mine == sorted(mine)


# -- POST /events on the connection level (served by a message delegate, not a RequestHandler) ----------


def raw_exchange(url: str, request: bytes, *, read: bool = True) -> bytes:
    """Send ``request`` bytes on a fresh connection; everything the service sends until it closes it."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=60) as sock:
        sock.sendall(request)
        if not read:
            return b""
        data = b""
        while more := sock.recv(65536):
            data += more
        return data


def test_posting_events_answers_like_every_endpoint_and_keeps_the_connection(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
    auth = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    try:
        answers = []
        # One kept-alive connection: a good request, a bad one, a chunked body, a read: all answered on it.
        for body in (b'{"key": "conn", "value": 1}', b'{"key": ', iter([b'{"key": "con', b'n", "value": 2}'])):
            conn.request(
                "POST", PREFIX + "/events", body=body, headers=auth, encode_chunked=not isinstance(body, bytes)
            )
            response = conn.getresponse()
            answers.append((response.status, dict(response.getheaders()), json.loads(response.read())))
            sock = conn.sock
        conn.request("GET", PREFIX + "/events?key=conn", headers=auth)
        read = conn.getresponse()
        listed = json.loads(read.read())
        assert conn.sock is sock  # never reconnected
    finally:
        conn.close()
    (ok, ok_headers, first), (bad, bad_headers, error), (chunked, _, second) = answers
    assert (ok, bad, chunked) == (200, 400, 200)
    assert error["error"]["code"] == "invalid_json"
    assert second["offset"] == first["offset"] + 1
    assert [(e["offset"], e["value"]) for e in listed["events"]] == [(first["offset"], 1), (second["offset"], 2)]
    # The same headers as a RequestHandler's answer (the GET), bar the GET's ETag.
    for headers in (ok_headers, bad_headers):
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert headers["Cache-Control"] == "no-store"
        assert set(headers) == set(dict(read.getheaders())) - {"Etag"}, headers


def test_a_client_gone_before_the_answer_leaves_its_event_once(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    body = b'{"key": "gone"}'
    request = (
        f"POST {PREFIX}/events HTTP/1.1\r\nHost: x\r\nAuthorization: token {token}\r\nIdempotency-Key: gone-1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    raw_exchange(url, request, read=False)  # closed at once: the answer has nowhere to go
    # HTTP/1.0 without keep-alive: answered, then the connection is closed.
    again = raw_exchange(url, request.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    head, _, answer = again.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    client = service.client()
    assert [e.offset for e in client.events(key="gone")] == [json.loads(answer)["offset"]]
    assert client.send_event("after") == json.loads(answer)["offset"] + 1
