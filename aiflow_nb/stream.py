"""Follow the service's event stream (WebSocket) from a plain thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from aiflow_nb.errors import ServiceUnavailableError, UnauthorizedError
from aiflow_nb.events.event import Event

if TYPE_CHECKING:
    from aiflow_nb.client import Client


async def _connect(request: HTTPRequest) -> WebSocketClientConnection:
    # Created inside the running loop: tornado binds futures to the current loop.
    return await websocket_connect(request)


async def _read(conn: WebSocketClientConnection) -> Any:
    return await conn.read_message()


async def _close(conn: WebSocketClientConnection, timeout: float = 2.0) -> None:
    """Close the connection and wait (briefly) until its socket is closed."""
    stream = conn.protocol.stream if conn.protocol is not None else None
    conn.close()
    if stream is None:
        return
    deadline = asyncio.get_running_loop().time() + timeout
    while not stream.closed() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    stream.close()


def follow(client: Client, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
    """Yield events after ``since`` forever (or until ``stop``); resume after drops."""
    loop = asyncio.new_event_loop()
    conn: WebSocketClientConnection | None = None
    pending: asyncio.Task[Any] | None = None
    try:
        while stop is None or not stop.is_set():
            if conn is None:
                url = client.url.replace("http://", "ws://", 1) + f"/api/v1/stream?since={since}"
                request = HTTPRequest(url, headers={"Authorization": f"token {client.token}"}, connect_timeout=10)
                try:
                    conn = loop.run_until_complete(_connect(request))
                except Exception as exc:
                    if stop is not None and stop.wait(0.5):
                        return
                    if stop is None:  # do not spin while the service restarts
                        time.sleep(0.5)
                    token = client.token
                    try:
                        client.url, client.token = client._discover()
                    except ServiceUnavailableError:
                        pass
                    if "401" in str(exc) and client.token == token:  # not just a restart with a new token
                        raise UnauthorizedError(f"the service refused the stream: {exc}") from None
                    continue
            if pending is None:
                # Not cancelled on a timeout: the same read is awaited again.
                pending = loop.create_task(_read(conn))
            loop.run_until_complete(asyncio.wait({pending}, timeout=1.0))
            if not pending.done():
                continue
            message, pending = pending.result(), None
            if message is None:  # closed: reconnect from the last offset
                loop.run_until_complete(_close(conn))
                conn = None
                continue
            event = Event.from_dict(json.loads(message))
            since = event.offset or since
            yield event
    finally:
        if conn is not None:
            loop.run_until_complete(_close(conn))
        if pending is not None and not pending.done():
            pending.cancel()
            loop.run_until_complete(asyncio.wait({pending}))
        # Let tornado run the callbacks that close a refused or dropped socket.
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
