"""The WebSocket event stream: every event in offset order, live, resumable from any offset."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from aiflow_nb import BashTask, Event, Workflow, errors
from aiflow_nb.client import Client
from aiflow_nb.events import keys
from aiflow_nb.server.app import PREFIX
from tests.conftest import RunningService
from tests.server import wait, wait_for_file


class Follow:
    """Runs ``client.stream(since)`` in a thread and collects what it yields."""

    def __init__(self, client: Client, since: int) -> None:
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, args=(client, since), daemon=True)

    def _run(self, client: Client, since: int) -> None:
        try:
            for event in client.stream(since=since, stop=self.stop):
                with self.lock:
                    self.events.append(event)
        except BaseException as exc:  # re-raised by the test
            self.error = exc

    def seen(self) -> list[Event]:
        if self.error is not None:
            raise AssertionError("the stream failed") from self.error
        with self.lock:
            return list(self.events)

    def until(self, predicate: Callable[[list[Event]], Any], what: str, timeout: float = 60) -> list[Event]:
        wait(lambda: predicate(self.seen()), timeout, what)
        return self.seen()

    def __enter__(self) -> Follow:
        self.thread.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the stream did not end when asked to"


def status_of(event: Event) -> tuple[str, str] | None:
    if event.key == keys.TASK_STATUS:
        return event.value["task"], event.value["status"]
    return None


def test_stream_delivers_task_status_changes_live_in_offset_order(service: RunningService, tmp_path: Path) -> None:
    client = service.client()
    flag = tmp_path / "release"
    with Workflow("live") as wf:
        first = BashTask("first", command=wait_for_file(flag))
        BashTask("second", command="echo second").start_after(first)
    client.submit(wf)
    since = client.health()["latest_offset"]
    with Follow(service.client(), since) as follow:
        ex = client.start_execution("live")
        follow.until(lambda evs: ("first", "RUNNING") in map(status_of, evs), "first RUNNING on the stream")
        # Seen while it runs: "first" waits for the flag that only the test creates.
        assert [t.status.value for t in client.task_executions(ex)] == ["RUNNING"]
        assert ("first", "SUCCESS") not in map(status_of, follow.seen())
        flag.touch()
        events = follow.until(
            lambda evs: any(e.key == keys.EXECUTION_STATUS and e.value["status"] == "SUCCESS" for e in evs),
            "the execution's SUCCESS on the stream",
        )
    offsets = [e.offset for e in events]
    assert offsets == list(range(since + 1, since + 1 + len(events)))
    # The same events, in the same order, as the log holds them.
    stored = client.events(since=since, limit=len(events))
    assert [e.to_dict() for e in events] == [e.to_dict() for e in stored]
    statuses = [s for s in map(status_of, events) if s is not None]
    order = [("first", "RUNNING"), ("first", "SUCCESS"), ("second", "RUNNING"), ("second", "SUCCESS")]
    assert [s for s in statuses if s in order] == order
    assert all(e.context == {"execution_id": ex} for e in events if e.key == keys.TASK_STATUS)


def test_stream_resumes_from_any_offset(service: RunningService) -> None:
    client = service.client()
    backlog = 1200
    # More than one read chunk of the service (500) is waiting before the stream starts.
    offsets = client.send_events([Event(f"k{i}", i) for i in range(backlog)])
    last = offsets[-1]
    for since in (0, 1, 499, 500, 501, last - 1, last):
        with Follow(service.client(), since) as follow:
            if since < last:
                follow.until(lambda evs, end=last: evs and evs[-1].offset == end, f"offset {last} from since={since}")
            marker = client.send_event("marker", since)
            events = follow.until(lambda evs, m=marker: evs and evs[-1].offset >= m, f"the marker after {since}")
        # Exactly the events after ``since``: none before, none skipped, none twice.
        assert [e.offset for e in events] == list(range(since + 1, marker + 1))
        assert [e.to_dict() for e in events] == [e.to_dict() for e in client.events(since=since, limit=10_000)]
        assert [(e.key, e.value) for e in events if e.offset <= backlog] == [
            (f"k{o - 1}", o - 1) for o in range(since + 1, backlog + 1)
        ]
        assert (events[-1].key, events[-1].value) == ("marker", since)
        last = marker


def test_stream_follows_the_service_across_a_restart(service: RunningService, home: Path) -> None:
    first = service.client().send_events([Event("before", i) for i in range(3)])
    with Client(home=home) as client, Follow(client, 0) as follow:
        follow.until(lambda evs: len(evs) == 3, "the events sent before the restart")
        service.kill()
        restarted = RunningService(home).start()
        try:
            later = restarted.client().send_events([Event("after", i) for i in range(3)])
            events = follow.until(lambda evs: len(evs) >= 6, "the events sent after the restart")
        finally:
            follow.stop.set()
            restarted.stop()
    assert [e.offset for e in events] == [*first, *later] == list(range(1, 7))
    assert [e.key for e in events] == ["before"] * 3 + ["after"] * 3


def test_stream_needs_the_token(service: RunningService) -> None:
    url = service.info.url.replace("http://", "ws://") + PREFIX + "/stream?since=0"

    async def status(request: HTTPRequest) -> int:
        try:
            conn = await websocket_connect(request)
        except HTTPClientError as exc:
            await asyncio.sleep(0.05)  # tornado closes the refused socket in a callback
            return exc.code
        conn.close()
        return 101

    assert asyncio.run(status(HTTPRequest(url))) == 401
    assert asyncio.run(status(HTTPRequest(url, headers={"Authorization": "token wrong"}))) == 401
    assert asyncio.run(status(HTTPRequest(url + "&token=wrong"))) == 401
    assert asyncio.run(status(HTTPRequest(url, headers={"Authorization": f"token {service.info.token}"}))) == 101
    assert asyncio.run(status(HTTPRequest(url + f"&token={service.info.token}"))) == 101
    # The client says so instead of retrying forever.
    with Client(service.info.url, "wrong") as client, pytest.raises(errors.UnauthorizedError, match="token"):
        next(iter(client.stream(since=0, stop=threading.Event())))
