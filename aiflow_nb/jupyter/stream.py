"""``/aiflow/api/v1/stream?since=N``: the event log, live, over a WebSocket to the browser.

The proxy follows the service with long polls (``GET /api/v1/events?wait=``)
and sends each event to the browser as one JSON message, the shape the
service's own stream sends.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from aiflow_nb.jupyter import errors, target, upstream
from aiflow_nb.server.info import ServerInfo

#: Events one poll brings at most.
LIMIT = 1000
#: Seconds a poll waits for a new event (the service allows up to 30).
WAIT = 25


class ServiceGone(Exception):
    """The service did not answer a poll as it does (stopped, or restarted with a new token)."""


async def poll(settings: dict[str, Any], server: ServerInfo, since: int, wait: int) -> list[dict[str, Any]]:
    """The events after ``since``, waiting up to ``wait`` seconds for the first."""
    try:
        response = await upstream.client(settings).get(
            f"{server.url}/api/v1/events",
            params={"since": since, "limit": LIMIT, "wait": wait},
            headers=upstream.headers(server),
            timeout=upstream.TIMEOUT + wait,
        )
    except httpx.TransportError as exc:
        raise ServiceGone(str(exc) or type(exc).__name__) from None
    if response.status_code != 200:
        raise ServiceGone(f"HTTP {response.status_code}")
    events: list[dict[str, Any]] = response.json()["events"]
    return events


class StreamProxyHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """One follower per browser socket; messages only flow service -> browser."""

    server: ServerInfo | None = None
    since = 0
    first: list[dict[str, Any]] = []
    pump: asyncio.Task[None] | None = None

    def set_default_headers(self) -> None:
        # JupyterHandler's defaults (CSP and such) are for pages, not for a socket upgrade.
        pass

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        since = self.get_query_argument("since", "0")
        if not (since.isascii() and since.isdigit()):
            raise web.HTTPError(400, "since must be an offset")
        server = target.running()
        if server is None:
            raise web.HTTPError(503, errors.NOT_RUNNING)
        try:
            # Ask once before the upgrade, so a dead service is an HTTP 503 the browser can see,
            # not a silent close.
            self.first = await poll(self.settings, server, int(since), wait=0)
        except ServiceGone as exc:
            raise web.HTTPError(503, f"{errors.NOT_RUNNING}: {exc}") from None
        self.server, self.since = server, int(since)
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.pump = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        server = self.server
        assert server is not None
        events, since = self.first, self.since
        try:
            while True:
                for event in events:
                    await self.write_message(json.dumps(event))
                    since = event.get("offset") or since
                events = await poll(self.settings, server, since, WAIT)
        except websocket.WebSocketClosedError:
            return
        except ServiceGone:
            # The service went away (or restarted): tell the browser, which reconnects.
            self.close(1011, "the aiflow-nb service closed the stream")

    def on_message(self, message: str | bytes) -> None:
        pass  # the stream is one-way

    def on_close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
