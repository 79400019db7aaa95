"""The /aiflow proxy: Jupyter's auth guards it, it forwards only the service's API, HTTP and WebSocket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket  # websocket-client (a dependency of jupyter_server): the browser's part in these tests

from aiflow_nb import BashTask, Workflow
from tests.conftest import RunningService
from tests.home_modes import not_owner_only
from tests.jupyter.servers import JupyterProcess


def call(
    jupyter: JupyterProcess, method: str, path: str, body: Any = None, token: str | None = "jupyter"
) -> tuple[int, Any]:
    """One raw request to Jupyter; the JSON body (or text) back."""
    headers = {"Content-Type": "application/json"}
    if token == "jupyter":
        headers["Authorization"] = f"token {jupyter.token}"
    elif token is not None:
        headers["Authorization"] = f"token {token}"
    response = httpx.request(
        method,
        f"http://127.0.0.1:{jupyter.port}{path}",
        content=None if body is None else json.dumps(body),
        headers=headers,
        timeout=30,
        trust_env=False,
    )
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def test_proxy_forwards_the_api_with_the_service_token(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    with Workflow("proxied") as wf:
        BashTask("a", command="true")
    aiflow.client().submit(wf)

    status, body = call(jupyter, "GET", "/aiflow/api/v1/workflows")
    assert status == 200
    assert "proxied" in [w["name"] for w in body["workflows"]]

    status, body = call(jupyter, "POST", "/aiflow/api/v1/events", {"key": "hello", "value": 1})
    assert status == 200 and body["offset"] > 0
    status, body = call(jupyter, "GET", "/aiflow/api/v1/events?key=hello")
    assert [e["value"] for e in body["events"]] == [1]

    status, svg = call(jupyter, "GET", "/aiflow/api/v1/workflows/default/proxied/graph")
    assert status == 200 and "<svg" in svg


def test_service_errors_pass_through_as_json(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    status, body = call(jupyter, "GET", "/aiflow/api/v1/workflows/default/nope")
    assert status == 404
    assert "nope" in body["error"]["message"]
    status, body = call(jupyter, "POST", "/aiflow/api/v1/events", {"value": 1})
    assert status == 400 and body["error"]["message"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_proxy_refuses_without_jupyters_token(
    jupyter: JupyterProcess, aiflow: RunningService, token: str | None
) -> None:
    status, _ = call(jupyter, "GET", "/aiflow/api/v1/workflows", token=token)
    assert status in (401, 403)
    status, _ = call(jupyter, "POST", "/aiflow/api/v1/events", {"key": "sneaky"}, token=token)
    assert status in (401, 403)
    assert aiflow.client().events(key="sneaky") == []
    status, _ = call(jupyter, "POST", "/aiflow/service", token=token)
    assert status in (401, 403)


def test_service_token_is_not_jupyters(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    # The service's own token must not open Jupyter's proxy (the browser only knows Jupyter's).
    status, _ = call(jupyter, "GET", "/aiflow/api/v1/workflows", token=aiflow.info.token)
    assert status in (401, 403)


@pytest.mark.parametrize(
    "path",
    [
        "/aiflow/other",
        "/aiflow/api/v2/workflows",
        "/aiflow/api/v1/%2e%2e/%2e%2e/api/contents",
        "/aiflow/api/v1/workflows/%2e%2e/%2e%2e/health",
        "/aiflow/api/v1/a//b",
        "/aiflow/api/v1/health%0A",  # a segment ending in a newline (issue 26, item 9)
    ],
)
def test_proxy_rejects_paths_outside_the_api(jupyter: JupyterProcess, aiflow: RunningService, path: str) -> None:
    status, body = call(jupyter, "GET", path)
    assert status == 404
    assert "API path" in body["error"]["message"]


def connect(url: str, headers: dict[str, str]) -> websocket.WebSocket:
    """A WebSocket to the proxy, as the browser opens one."""
    return websocket.create_connection(url, timeout=30, header=[f"{k}: {v}" for k, v in headers.items()])


def receive(conn: websocket.WebSocket, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events the proxy sends (each read waits up to 30 s)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = conn.recv()
        assert message, "the proxy closed the stream"
        got.append(json.loads(message))
    return got


def refusal(url: str, headers: dict[str, str]) -> int:
    """The HTTP status the proxy refuses a WebSocket upgrade with."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(url, headers).close()
    return int(refused.value.status_code)


def test_websocket_stream_is_proxied(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    client = aiflow.client()
    first = client.send_event("ws.one", 1)
    client.send_event("ws.two", 2)
    url = f"ws://127.0.0.1:{jupyter.port}/aiflow/api/v1/stream?since={first - 1}"
    conn = connect(url, {"Authorization": f"token {jupyter.token}"})
    try:
        events = receive(conn, 2)
    finally:
        conn.close()
    assert [(e["key"], e["value"]) for e in events] == [("ws.one", 1), ("ws.two", 2)]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_websocket_needs_jupyters_token(jupyter: JupyterProcess, aiflow: RunningService, token: str | None) -> None:
    headers = {} if token is None else {"Authorization": f"token {token}"}
    url = f"ws://127.0.0.1:{jupyter.port}/aiflow/api/v1/stream?since=0"
    assert refusal(url, headers) in (401, 403)


def test_live_events_reach_the_websocket(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    client = aiflow.client()
    since = client.health()["latest_offset"]
    url = f"ws://127.0.0.1:{jupyter.port}/aiflow/api/v1/stream?since={since}"
    conn = connect(url, {"Authorization": f"token {jupyter.token}"})
    try:
        # Sent after the proxy answered the upgrade: it follows the service with long polls.
        sent = client.send_event("ws.live", "x")
        [event] = receive(conn, 1)
    finally:
        conn.close()
    assert (event["offset"], event["key"], event["value"]) == (sent, "ws.live", "x")


def test_events_sent_one_after_another_reach_one_socket(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    """The proxy polls the service again after each answer."""
    client = aiflow.client()
    since = client.health()["latest_offset"]
    conn = connect(
        f"ws://127.0.0.1:{jupyter.port}/aiflow/api/v1/stream?since={since}",
        {"Authorization": f"token {jupyter.token}"},
    )
    try:
        first = client.send_event("ws.first")
        assert [e["offset"] for e in receive(conn, 1)] == [first]
        second = client.send_event("ws.second")
        assert [e["offset"] for e in receive(conn, 1)] == [second]
    finally:
        conn.close()


def test_proxy_says_when_the_service_is_not_running(jupyter: JupyterProcess, no_service: object) -> None:
    status, body = call(jupyter, "GET", "/aiflow/api/v1/workflows")
    assert status == 503
    assert body["error"]["code"] == "service_unavailable"
    assert "not running" in body["error"]["message"]
    status, body = call(jupyter, "GET", "/aiflow/service")
    assert status == 200 and body["running"] is False
    assert "token" not in body


def test_service_endpoint_starts_the_service(jupyter: JupyterProcess, no_service: Path) -> None:
    status, body = call(jupyter, "POST", "/aiflow/service")
    assert status == 200, body
    assert body["running"] is True and body["started"] is True
    assert "token" not in body
    status, again = call(jupyter, "POST", "/aiflow/service")
    assert again["started"] is False and again["pid"] == body["pid"]
    status, health = call(jupyter, "GET", "/aiflow/api/v1/health")
    assert status == 200 and health["status"] == "ok"
    assert not_owner_only(no_service) == []  # started by the Jupyter server's process (issue 26, item 1)


def test_websocket_without_service_is_503(jupyter: JupyterProcess, no_service: object) -> None:
    url = f"ws://127.0.0.1:{jupyter.port}/aiflow/api/v1/stream?since=0"
    assert refusal(url, {"Authorization": f"token {jupyter.token}"}) == 503
