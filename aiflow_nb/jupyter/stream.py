"""WebSocket proxy: ``/aiflow/api/v1/stream?since=N`` relays the service's event stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import httpclient, web, websocket

from aiflow_nb.jupyter import errors, target


class StreamProxyHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """One upstream connection per browser socket; messages only flow service -> browser."""

    upstream: websocket.WebSocketClientConnection | None = None
    pump: asyncio.Task[None] | None = None

    def set_default_headers(self) -> None:
        # JupyterHandler's defaults (CSP and such) are for pages, not for a socket upgrade.
        pass

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        since = self.get_query_argument("since", "0")
        if not since.isdigit():
            raise web.HTTPError(400, "since must be an offset")
        server = target.running()
        if server is None:
            raise web.HTTPError(503, errors.NOT_RUNNING)
        url = server.url.replace("http://", "ws://", 1) + f"/api/v1/stream?since={since}"
        request = httpclient.HTTPRequest(url, headers={"Authorization": f"token {server.token}"}, connect_timeout=10)
        try:
            # Connect first, so a dead service is an HTTP 503 the browser can see, not a silent close.
            self.upstream = await websocket.websocket_connect(request)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise web.HTTPError(503, f"{errors.NOT_RUNNING}: {exc}") from None
        await super().get(*args, **kwargs)
        if self.ws_connection is None:  # the upgrade was refused (bad origin, ...)
            self._close_upstream()

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.pump = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        while True:
            message = await upstream.read_message()
            if message is None:  # the service went away: tell the browser, which reconnects
                self.close(1011, "the aiflow-nb service closed the stream")
                return
            try:
                await self.write_message(message)
            except websocket.WebSocketClosedError:
                return

    def on_message(self, message: str | bytes) -> None:
        pass  # the stream is one-way

    def on_close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        self._close_upstream()

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                self.upstream.close()
            self.upstream = None
