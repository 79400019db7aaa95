"""Tokens stay out of logs and error bodies; the home is the user's alone; run files cannot lead out of it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import tornado.httpclient
import tornado.websocket

from aiflow_nb import BashTask, Workflow
from aiflow_nb.executors.base import run_dir
from aiflow_nb.home import database_path
from aiflow_nb.server import info
from tests.conftest import RunningService
from tests.server import call, wait_task


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tokens_never_reach_the_log_nor_an_answer(service: RunningService, home: Path) -> None:
    token = service.info.token
    task_token = (home / info.TASK_TOKEN).read_text().strip()
    wrong = "not-the-token-" + "x" * 20
    url = service.info.url
    bodies: list[bytes] = []

    def ask(method: str, path: str, **kwargs: object) -> int:
        response = call(url, method, path, **kwargs)  # type: ignore[arg-type]
        bodies.append(response.body)
        return response.status

    # Each kind of request a client may get wrong, with a token where it could leak from.
    assert ask("GET", "/api/v1/workflows", params={"token": token}) == 401  # ?token= is the WebSocket's alone
    assert ask("GET", "/api/v1/workflows", token=token, params={"token": token}) == 200
    assert ask("GET", "/api/v1/nowhere", params={"token": token}) == 404  # tornado logs 4xx lines
    assert ask("GET", "/api/v1/workflows/default/none", token=token, params={"token": token}) == 404
    assert ask("GET", "/api/v1/workflows", params={"token": wrong}) == 401
    assert ask("GET", "/api/v1/workflows", token=wrong) == 401
    assert ask("POST", "/api/v1/events", token=token, raw_body=b"{not json") == 400
    assert ask("POST", "/api/v1/events", token=token, body={"key": "", "value": token}) == 400
    assert ask("GET", "/api/v1/workflows", token=task_token) == 401  # the task token only sends events
    assert ask("GET", "/api/v1/events", token=token, params={"token": token, "since": "x"}) == 400
    assert ask("PUT", "/api/v1/workflows", token=token, params={"token": token}) == 405
    # Percent-encoded, the token is no longer the text a plain search-and-replace looks for.
    encoded = "".join(f"%{ord(c):02X}" for c in token)
    assert ask("GET", f"/api/v1/nowhere?token={encoded}&t={encoded}") == 404
    ws = url.replace("http", "ws") + "/api/v1/stream"
    assert ws_refused(f"{ws}?token={wrong}", bodies) == 401
    assert ws_refused(f"{ws}?since=x&token={token}", bodies) == 400
    # A number int() reads but the API does not (was a 500, logged with the whole URI).
    for since in ("%C2%B2", "%D9%A3", "%2B1", "1_0", "-1"):
        assert ws_refused(f"{ws}?since={since}&token={encoded}", bodies) == 400
    service.stop()  # its log is complete

    logged = "\n".join(p.read_text(errors="replace") for p in (home / "logs").glob("*"))
    assert "/api/v1/nowhere" in logged  # the requests were logged, by path
    assert "Traceback" not in logged
    for secret in (token, task_token, wrong, encoded, encoded.lower()):
        assert secret not in logged
    for body in bodies:
        for secret in (token, task_token, wrong):
            assert secret.encode() not in body, body


def ws_refused(url: str, bodies: list[bytes]) -> int:
    """The status a WebSocket upgrade is refused with (its body joins ``bodies``)."""

    async def go() -> int:
        try:
            conn = await tornado.websocket.websocket_connect(url, connect_timeout=30)
        except tornado.httpclient.HTTPClientError as exc:
            assert exc.response is not None
            bodies.append(exc.response.body)
            return exc.code
        conn.close()
        raise AssertionError(f"{url}: the upgrade was accepted")

    return asyncio.run(go())


def test_the_home_and_what_holds_secrets_are_the_users_alone(service: RunningService, home: Path) -> None:
    service.client().send_event("written")  # the database holds an event
    assert mode(home) == 0o700
    assert mode(home / "logs") == 0o700
    assert mode(home / "server.json") == 0o600
    assert mode(home / info.TASK_TOKEN) == 0o600
    assert mode(database_path(home)) == 0o600


def test_run_files_that_lead_out_of_the_home_are_refused(service: RunningService, home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("private key material\n")
    with Workflow("escape") as wf:
        BashTask("t", command="echo inside")
    client = service.client()
    client.submit(wf)
    ex = client.start_execution("escape")
    te = wait_task(client, ex, "t", "SUCCESS")
    assert "inside" in client.task_log(te.id)
    folder = run_dir(home, te.id, te.attempt)
    # A task could leave these behind in its own run folder.
    (folder / "log.txt").unlink()
    (folder / "log.txt").symlink_to(secret)
    (folder / "output.ipynb").symlink_to(secret)
    url, token = service.info.url, service.info.token
    for name in ("log", "notebook"):
        response = call(url, "GET", f"/api/v1/task-executions/{te.id}/{name}", token=token)
        assert response.status == 403, response
        error = json.loads(response.body)["error"]
        assert error["code"] == "forbidden" and "outside the aiflow-nb home" in error["message"]
        assert b"private key" not in response.body
    # Paths that are not ids never reach the files.
    for path in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", str(te.id) + "%2F..%2F.."):
        response = call(url, "GET", f"/api/v1/task-executions/{path}/log", token=token)
        assert response.status == 404, (path, response)
        assert json.loads(response.body)["error"]["code"] == "not_found"
    assert os.path.islink(folder / "log.txt")  # nothing was changed either
