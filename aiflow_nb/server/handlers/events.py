"""POST/GET /api/v1/events."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Iterator
from http.client import responses
from typing import Any, NoReturn

import tornado
from tornado import httputil

from aiflow_nb import faults
from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE
from aiflow_nb.events.event import EncodedEvents, Row, check_name, encode_rows
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
from aiflow_nb.server.redact import log_access
from aiflow_nb.server.service import Service

#: The ``Server`` header tornado's handlers send.
SERVER = f"TornadoServer/{tornado.version}"

MAX_READ = 10_000


#: The fields a client may send (``offset`` and ``create_time`` are the log's).
FIELDS = frozenset({"key", "value", "namespace", "sender", "context", "idempotency_key"})


def parse_events(items: list[Any], many: bool) -> tuple[EncodedEvents, list[str | None]]:
    """The events of a request's JSON, encoded for the log, and their idempotency keys.

    Checked and encoded in one pass (``encode_rows``), on the IOLoop: a bad
    request fails alone, before it reaches a commit group.  A batch holds up
    to 100,000 events, so nothing here makes a call per event it need not.
    """
    keys: list[str | None] = []
    index = 0

    def rows() -> Iterator[Row]:
        nonlocal index
        add_key = keys.append
        for index, data in enumerate(items):  # noqa: B007  (the index words an error below)
            if type(data) is not dict or not data.keys() <= FIELDS:
                _refuse(data)
            get = data.get
            key, namespace = get("idempotency_key"), get("namespace")
            if key is not None or not (namespace is None or (type(namespace) is str and namespace.strip())):
                # Checked here too: a bad key would otherwise fail every request of its commit group.
                check_name("idempotency key", key, optional=True)
                check_name("namespace", namespace, optional=True)  # "" would turn into the default
            add_key(key)
            yield get("key"), get("value"), namespace or DEFAULT_NAMESPACE, get("sender"), get("context")

    try:
        return encode_rows(rows()), keys
    except InvalidEventError as exc:
        raise type(exc)(f"event {index}: {exc}" if many else str(exc)) from None


def _refuse(data: Any) -> NoReturn:
    if not isinstance(data, dict):
        raise InvalidEventError("an event must be a JSON object with at least a 'key'")
    for field in ("offset", "create_time"):
        if field in data:
            raise InvalidEventError(f"'{field}' is assigned by the log; do not send it")
    raise InvalidEventError(f"unknown event field(s): {', '.join(sorted(data.keys() - FIELDS))}")


def request_key(headers: httputil.HTTPHeaders, keys: list[str | None]) -> str | None:
    """The ``Idempotency-Key`` header: a retry of the whole request with it appends nothing again."""
    key = headers.get("Idempotency-Key")
    if key is None:
        return None
    check_name("idempotency key", key)
    if any(k is not None for k in keys):
        raise InvalidEventError("send either the Idempotency-Key header or an idempotency_key per event, not both")
    return key


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return httputil.format_timestamp(second)  # once a second: it costs more than the other headers


class EventIngest(httputil.HTTPMessageDelegate):
    """POST /api/v1/events, served without a RequestHandler.

    The endpoint called thousands of times a second: a RequestHandler costs
    the IOLoop more than all else such a request needs (on the 2-core test
    machine a bare handler answered 2,500-3,400 requests/s, a bare message
    delegate 3,600-6,000).  The checks, statuses, headers and JSON are the
    handlers' (``base`` holds what they share); the body is read only once
    the headers passed.
    """

    def __init__(self, service: Service, request: httputil.HTTPServerRequest) -> None:
        self.service = service
        self.request = request
        self.chunks: list[bytes] = []
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
            self._fail(exc)  # the connection closes: the body is never buffered
            return
        # A chunked body without a length: the connection is closed once it grows past the limit.
        self.request.connection.set_max_body_size(MAX_BODY_BYTES)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        if not self.done:
            self.chunks.append(chunk)

    def finish(self) -> None:
        if self.done:
            return
        try:
            body = decode_json(b"".join(self.chunks))
            many = isinstance(body, dict) and "events" in body
            items = body["events"] if many else [body]
            if not isinstance(items, list) or not items:
                raise ApiError(400, "invalid_event", "'events' must be a non-empty list")
            events, keys = parse_events(items, many)
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
        filters = {k: self.get_query_argument(k, None) for k in ("key", "namespace", "sender")}
        events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        self.send({"events": [e.to_dict() for e in events]})
