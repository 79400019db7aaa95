"""Token auth: every route refuses a missing or wrong token with a JSON 401, and serves the right one."""

from __future__ import annotations

import json
import re
import socket
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from aiflow_nb import BashTask, NotebookTask, Workflow
from aiflow_nb.server.app import PREFIX, ROUTES
from tests.conftest import RunningService
from tests.server import call, stored_state, wait_for_file, wait_task, write_notebook

METHODS = ("get", "post", "delete", "put")


def methods_of(handler: type[tornado.web.RequestHandler], openapi_path: str) -> list[str]:
    """The HTTP methods a route answers: the ones its handler (or a parent below RequestHandler) defines."""
    return [m.upper() for m in METHODS if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)]


@pytest.fixture
def busy(service: RunningService, tmp_path: Path) -> dict[str, Any]:
    """A submitted workflow with a finished notebook task and a still running execution."""
    nb = write_notebook(tmp_path / "hello.ipynb", "print('hello')")
    with Workflow("guarded") as wf:
        NotebookTask("nb", notebook=nb)
        BashTask("wait", command=wait_for_file(tmp_path / "never"))
    wf.schedule(cron="0 0 1 1 *")  # yearly: it has a schedule to backfill, and never ticks in the test
    client = service.client()
    client.submit(wf)
    ex_id = client.start_execution("guarded")
    te = wait_task(client, ex_id, "nb", "SUCCESS")
    wait_task(client, ex_id, "wait", "RUNNING")
    return {
        "namespace": "default",
        "name": "guarded",
        "execution_id": ex_id,
        "task": "wait",
        "action": "start",  # START on a running task is ignored: harmless to repeat
        "task_execution_id": te.id,
    }


def fill(openapi_path: str, values: dict[str, Any]) -> str:
    return PREFIX + re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), openapi_path)


def requests(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every route; reads first, then changes, stopping and deleting last."""
    found = []
    for regex, handler, openapi_path in ROUTES:
        path = fill(openapi_path, values)
        assert re.fullmatch(PREFIX + regex, path), (regex, path)
        found += [(method, path) for method in methods_of(handler, openapi_path)]
    order = {"GET": 0, "POST": 1, "PUT": 1, "DELETE": 3}
    return sorted(found, key=lambda mp: 2 if mp[1].endswith("/stop") else order[mp[0]])


def assert_unauthorized(response: Any, what: str) -> None:
    assert response.status == 401, (what, response.status, response.body[:300])
    assert response.error()["code"] == "unauthorized", what


def test_every_route_needs_the_token(service: RunningService, busy: dict[str, Any]) -> None:
    client = service.client()
    url, token = service.info.url, service.info.token
    routes = requests(busy)
    assert len(routes) >= len(ROUTES)
    before = stored_state(client)
    for method, path in routes:
        if path == PREFIX + "/health":
            continue
        body = {} if method in ("POST", "PUT") else None
        assert_unauthorized(call(url, method, path, body), f"{method} {path} without a token")
        assert_unauthorized(call(url, method, path, body, token="not-" + token), f"{method} {path}, wrong token")
        assert_unauthorized(
            call(url, method, path, body, headers={"Authorization": "token "}), f"{method} {path}, empty token"
        )
        assert_unauthorized(
            call(url, method, path, body, params={"token": token[:-1]}), f"{method} {path}, wrong ?token="
        )
    # None of the refused requests changed anything (no pause, no stop, no delete, no new event).
    assert stored_state(client) == before

    for method, path in routes:
        body = None
        if path.endswith("/events") and method == "POST":
            body = {"key": "authorized"}
        elif path.endswith("/workflows") and method == "POST":
            body = client.workflow("guarded").to_spec()
        elif path.endswith("/replay"):
            body = {"spec": client.workflow("guarded").to_spec()}
        elif path.endswith("/backfill"):
            body = {"start": "2020-01-01T00:00:00+00:00", "end": "2020-01-01T00:00:00+00:00"}
        response = call(url, method, path, body, token=token)
        if path.endswith("/stream"):
            # Plain HTTP to the WebSocket route: past the token check, refused only for not upgrading.
            assert response.status == 400, response.body
            continue
        assert response.status != 401, (method, path)
        if method == "GET":
            assert response.status == 200, (method, path, response.status, response.body[:300])
        else:
            assert response.status < 400, (method, path, response.status, response.body[:300])
    assert [e.key for e in client.events(key="authorized")] == ["authorized"]
    assert client.workflows() == []  # the DELETE with the token went through


def test_health_needs_no_token(service: RunningService) -> None:
    response = call(service.info.url, "GET", PREFIX + "/health")
    assert response.status == 200
    data = response.json()
    assert data["status"] == "ok" and isinstance(data["latest_offset"], int)
    # A wrong token on the health check is ignored, not refused.
    assert call(service.info.url, "GET", PREFIX + "/health", token="wrong").status == 200


def test_the_token_as_a_query_argument_is_taken_by_the_websocket_route_only(service: RunningService) -> None:
    # A browser's WebSocket cannot send headers; every other caller can, and a query ends up in logs.
    url, token = service.info.url, service.info.token
    assert_unauthorized(call(url, "GET", PREFIX + "/workflows", params={"token": token}), "GET with ?token=")
    posted = call(url, "POST", PREFIX + "/events", {"key": "by-query"}, params={"token": token})
    assert_unauthorized(posted, "POST /events with ?token=")
    assert service.client().events(key="by-query") == []
    assert_unauthorized(call(url, "GET", PREFIX + "/workflows", params={"token": ""}), "empty ?token=")


def test_server_json_is_private(service: RunningService, home: Path) -> None:
    path = home / "server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_text()
    assert service.info.token in data and service.info.url in data and str(service.pid) in data


def test_the_task_token_may_only_send_events(service: RunningService, busy: dict[str, Any], home: Path) -> None:
    """The token given to tasks on other machines (Dask workers) sends events and nothing else."""
    path = home / "task-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    task_token = path.read_text()
    assert task_token and task_token != service.info.token
    url = service.info.url
    client = service.client()
    before = stored_state(client)
    for method, path_ in requests(busy):
        if path_ in (PREFIX + "/health", PREFIX + "/events") and method in ("GET", "POST"):
            continue
        body = {} if method in ("POST", "PUT") else None
        assert_unauthorized(call(url, method, path_, body, token=task_token), f"{method} {path_} with the task token")
    assert_unauthorized(call(url, "GET", PREFIX + "/events", token=task_token), "GET /events with the task token")
    assert stored_state(client) == before
    sent = call(url, "POST", PREFIX + "/events", {"key": "from-a-task"}, token=task_token)
    assert sent.status == 200, sent.body
    assert [e.offset for e in client.events(key="from-a-task")] == [sent.json()["offset"]]


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: *(\d+)", head, re.I)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


def raw_headers_only(url: str, path: str, length: int, token: str | None) -> tuple[int, dict[str, Any]]:
    """Send a POST's headers declaring ``length`` bytes, and none of the body; the status and JSON answer."""
    parsed = urllib.parse.urlsplit(url)
    auth = f"Authorization: token {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parsed.hostname}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(head.encode())
        data = b""
        while not _complete(data):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_a_body_is_not_read_without_the_token_nor_over_the_limit(service: RunningService) -> None:
    from aiflow_nb.server.handlers.base import MAX_BODY_BYTES

    url, token = service.info.url, service.info.token
    # Answered from the headers alone: the 200 MB the client announced are never waited for.
    status, body = raw_headers_only(url, PREFIX + "/events", 200_000_000, None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = raw_headers_only(url, PREFIX + "/events", MAX_BODY_BYTES + 1, token)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert f"{MAX_BODY_BYTES:,} bytes" in body["error"]["message"]
    status, body = raw_headers_only(url, PREFIX + "/workflows", MAX_BODY_BYTES + 1, token)
    assert status == 413
    # Nothing was stored, and the service goes on.
    assert service.client().events() == []
    assert call(url, "POST", PREFIX + "/events", {"key": "after"}, token=token).status == 200


def test_a_request_refused_before_its_body_says_its_connection_closes(service: RunningService) -> None:
    """A client retrying with another token opens a new connection rather than reuse the one dropped."""
    import httpx

    url, token = service.info.url, service.info.token
    with httpx.Client(trust_env=False) as client:
        refused = client.post(
            url + PREFIX + "/workflows", content=b'{"name": "w"}', headers={"Authorization": "token wrong"}
        )
        assert refused.status_code == 401 and refused.headers.get("connection") == "close"
        served = client.get(url + PREFIX + "/workflows", headers={"Authorization": f"token {token}"})
        assert served.status_code == 200 and served.headers.get("connection") != "close"
