"""POST/GET /api/v1/events."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from http.client import responses
from typing import Any

import tornado
from tornado import httputil

from aiflow_nb import faults
from aiflow_nb.server.handlers.base import (
    MAX_BODY_BYTES,
    UNAUTHORIZED,
    ApiError,
    BaseHandler,
    authorized,
    check_declared_size,
    decode_json,
    error_body,
    log_failure,
    status_of,
)
from aiflow_nb.server.handlers.lines import LineEvents, is_ndjson
from aiflow_nb.server.handlers.parse import parse_events, request_key
from aiflow_nb.server.handlers.written import written_batch
from aiflow_nb.server.redact import log_access
from aiflow_nb.server.service import Service

#: The ``Server`` header tornado's handlers send.
SERVER = f"TornadoServer/{tornado.version}"

MAX_READ = 10_000
#: The longest a GET /events waits for a new event (seconds).
MAX_WAIT = 30


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return httputil.format_timestamp(second)  # once a second: it costs more than the other headers


class EventIngest(httputil.HTTPMessageDelegate):
    """POST /api/v1/events, served without a RequestHandler.

    The endpoint called thousands of times a second: a RequestHandler costs
    the IOLoop more than all else such a request needs (on the 2-core test
    machine a bare handler answered 2,500-3,400 requests/s, a bare message
    delegate 3,600-6,000).  The checks, statuses, headers and JSON are the
    handlers' (``base`` holds what they share); a body is taken in only once
    the headers passed (one of up to 64 KiB the listener has read already).
    """

    def __init__(self, service: Service, request: httputil.HTTPServerRequest) -> None:
        self.service = service
        self.request = request
        self.chunks: list[bytes] = []
        #: An NDJSON body, parsed as it arrives (None: a JSON body, parsed once complete).
        self.lines: LineEvents | None = None
        #: The answer is written, or the client left: nothing more to write.
        self.done = False

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        query_token = self.request.query_arguments.get("token")
        try:
            token = query_token[-1].decode("utf-8", "replace").strip() if query_token else None
            # The task token may send events (and do nothing else).
            if not authorized(self.service, headers.get("Authorization"), token, task_token=True):
                raise ApiError(401, "unauthorized", UNAUTHORIZED)
            check_declared_size(headers.get("Content-Length"))
        except ApiError as exc:
            self._fail(exc)  # a body not read yet never is: tornado closes the connection
            return
        # A chunked body without a length: the connection is closed once it grows past the limit.
        self.request.connection.set_max_body_size(MAX_BODY_BYTES)  # type: ignore[union-attr]
        if is_ndjson(headers.get("Content-Type")):
            self.lines = LineEvents()

    def data_received(self, chunk: bytes) -> None:
        if self.done:
            return
        if self.lines is not None:
            self.lines.feed(chunk)
        else:
            self.chunks.append(chunk)

    def finish(self) -> None:
        if self.done:
            return
        try:
            if self.lines is not None:
                many = True
                events, keys = self.lines.result()
            else:
                data = b"".join(self.chunks)
                written = written_batch(data)
                if written is not None:
                    many = True
                    events, keys = written
                else:
                    body = decode_json(data)
                    many = isinstance(body, dict) and "events" in body
                    items = body["events"] if many else [body]
                    if not isinstance(items, list) or not items:
                        raise ApiError(400, "invalid_event", "'events' must be a non-empty list")
                    events, keys = parse_events(items, (lambda i: f"event {i}") if many else None)
            batch_key = request_key(self.request.headers, keys)
            faults.point("http.read")
            future = self.service.group_commit.submit(events, keys, batch_key)
        except Exception as exc:
            self._fail(exc)
            return
        future.add_done_callback(lambda done: self._committed(done, many))

    def on_connection_close(self) -> None:
        self.done = True  # what was committed stays committed; a retry with the same key gets its offsets

    def _committed(self, future: asyncio.Future[list[int]], many: bool) -> None:
        if self.done:
            return
        error = future.exception()
        if error is not None:
            self._fail(error)
            return
        offsets = future.result()
        self._send(200, {"offsets": offsets} if many else {"offset": offsets[0]})

    def _fail(self, error: BaseException) -> None:
        request = self.request
        status = status_of(error)
        log_failure(error, request)
        self._send(status, error_body(status, error, responses.get(status, "Unknown")))

    def _send(self, status: int, data: dict[str, Any]) -> None:
        self.done = True
        body = json.dumps(data).encode()
        headers = httputil.HTTPHeaders()
        headers["Server"] = SERVER
        headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Cache-Control"] = "no-store"
        headers["Date"] = _http_date(int(time.time()))
        headers["Content-Length"] = str(len(body))
        connection = self.request.connection
        assert connection is not None
        connection.write_headers(
            httputil.ResponseStartLine("", status, responses.get(status, "Unknown")), headers, body
        )
        connection.finish()
        log_access(status, self.request)


class EventsHandler(BaseHandler):
    """GET /api/v1/events (POST is served by :class:`EventIngest`)."""

    async def get(self) -> None:
        since = self.int_argument("since", 0)
        limit = self.int_argument("limit", 1000)
        assert since is not None and limit is not None
        if limit < 1 or limit > MAX_READ:
            raise ApiError(400, "invalid_argument", f"limit must be between 1 and {MAX_READ}")
        wait = self.int_argument("wait", 0)
        assert wait is not None
        if wait < 0 or wait > MAX_WAIT:
            raise ApiError(400, "invalid_argument", f"wait must be between 0 and {MAX_WAIT} seconds")
        filters = {k: self.get_query_argument(k, None) for k in ("key", "namespace", "sender")}
        events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        if not events and wait:
            # A long poll: answer as soon as an event after ``since`` is committed (it may not match
            # the filters: the caller then asks again from the same offset).
            await self.service.wait_for_events(since, timeout=wait)
            events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        self.send({"events": [e.to_dict() for e in events]})
