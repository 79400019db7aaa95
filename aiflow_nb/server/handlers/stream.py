"""WS /api/v1/stream?since=OFFSET: every event after ``since``, then live."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import tornado.websocket

from aiflow_nb.server.handlers.base import UNAUTHORIZED, encode_json, parse_count, token_ok
from aiflow_nb.server.handlers.records import as_dict
from aiflow_nb.server.redact import request_summary
from aiflow_nb.server.service import Service

log = logging.getLogger("aiflow_nb.server.stream")
CHUNK = 500


class StreamHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, service: Service) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    def _request_summary(self) -> str:
        return request_summary(self.request)  # by path: the query may hold ?token=

    def check_origin(self, origin: str) -> bool:
        # The token is the guard; clients are local programs and the proxy.
        return True

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Not tornado's default, which logs repr(request): its query and headers hold the token.
        log.error("uncaught exception in %s", request_summary(self.request), exc_info=(typ, value, tb))

    def refuse(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(encode_json({"error": {"code": code, "message": message}}))

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # ?token= is taken here, and only here: a browser's WebSocket cannot send headers.
        if not token_ok(
            self.service.token, self.request.headers.get("Authorization"), self.get_query_argument("token", None)
        ):
            self.refuse(401, "unauthorized", UNAUTHORIZED)
            return
        since = parse_count(self.get_query_argument("since", "0"))
        if since is None:
            self.refuse(400, "invalid_argument", "since must be an offset (digits 0-9)")
            return
        self.since = since
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        engine = self.service.engine
        try:
            while True:
                events = await self.service.db(engine.events, since=self.since, limit=CHUNK)
                for event in events:
                    await self.write_message(encode_json(as_dict(event)).decode())
                    self.since = event.offset or self.since
                if len(events) < CHUNK:
                    await self.service.wait_for_events(self.since, timeout=5.0)
        except tornado.websocket.WebSocketClosedError:
            pass
        except asyncio.CancelledError:
            raise

    def on_close(self) -> None:
        if self.task is not None:
            self.task.cancel()
