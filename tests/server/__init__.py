"""Helpers the service tests share: waiting with a deadline, raw HTTP, snapshots."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiflow_nb.client import Client
from aiflow_nb.notebooks import write_code_notebook

T = TypeVar("T")


def wait(predicate: Callable[[], T], timeout: float = 60.0, what: str = "a condition") -> T:
    """Return ``predicate()`` once truthy; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def latest_runs(client: Client, execution_id: int) -> dict[str, Any]:
    """The latest task execution of each task of an execution."""
    found: dict[str, Any] = {}
    for te in client.task_executions(execution_id):
        if te.task not in found or te.seq >= found[te.task].seq:
            found[te.task] = te
    return found


def wait_task(client: Client, execution_id: int, task: str, status: str, seq: int = 1, timeout: float = 60.0) -> Any:
    """Wait until run ``seq`` of ``task`` has ``status``; return that task execution."""

    def found() -> Any:
        return next(
            (
                te
                for te in client.task_executions(execution_id)
                if te.task == task and te.seq == seq and te.status.value == status
            ),
            None,
        )

    return wait(found, timeout, f"execution {execution_id}: {task} seq {seq} {status}")


def wait_execution(client: Client, execution_id: int, status: str, timeout: float = 60.0) -> Any:
    return wait(
        lambda: client.execution(execution_id).status.value == status and client.execution(execution_id),
        timeout,
        f"execution {execution_id} {status}",
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The ``{"error": {code, message}}`` body of an error response (asserting its shape)."""
        assert self.content_type.startswith("application/json"), (self.status, self.content_type, self.body[:200])
        data = self.json()
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"code", "message"}, data
        assert isinstance(data["error"]["code"], str) and data["error"]["code"], data
        assert isinstance(data["error"]["message"], str) and data["error"]["message"], data
        assert "Traceback" not in data["error"]["message"], data
        return dict(data["error"])


def call(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw_body: bytes | None = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One HTTP request on a fresh connection (``path`` is below the server root)."""
    parsed = urllib.parse.urlsplit(url)
    target = path + ("?" + urllib.parse.urlencode(params) if params else "")
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"token {token}"
    payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
    try:
        conn.request(method, target, body=payload, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def wait_for_file(path: Path) -> str:
    """A shell command that waits until ``path`` exists (the test releases a task by creating it)."""
    return f"while [ ! -e '{path}' ]; do sleep 0.05; done"


def stored_state(client: Client) -> dict[str, Any]:
    """Everything the service stores that a client can see, for before/after comparisons."""
    workflows = client.workflows()
    executions = client.executions()
    return {
        "workflows": workflows,
        "specs": {(w.namespace, w.name): client.workflow(w.name, w.namespace).to_spec() for w in workflows},
        "executions": [e.to_dict() for e in executions],
        "task_executions": {e.id: [t.to_dict() for t in client.task_executions(e.id)] for e in executions},
        "events": [e.to_dict() for e in client.events(since=0, limit=10_000)],
    }


#: Tests import it from here.
write_notebook = write_code_notebook
