"""The base handler: token auth, JSON bodies, errors as JSON."""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

import msgspec
import tornado.httputil
import tornado.web

from aiflow_nb import errors
from aiflow_nb.server.redact import request_summary
from aiflow_nb.server.service import Service

log = logging.getLogger("aiflow_nb.server.api")

#: HTTP status of each error class (the first match wins).
STATUS_OF = (
    (errors.NotFoundError, 404),
    (errors.ForbiddenError, 403),
    (errors.IllegalTransitionError, 409),
    (errors.LimitReachedError, 409),
    (errors.EventTooLargeError, 413),
    (errors.IdempotencyKeyReusedError, 422),
    (errors.StorageFullError, 507),  # the disk is full: not the client's mistake, nothing was stored
    (errors.StorageError, 507),  # the database could not be written (for another reason)
    (errors.AiflowError, 400),
)


def token_ok(expected: str, authorization: str | None, query_token: str | None) -> bool:
    given = ""
    if authorization and authorization.lower().startswith("token "):
        given = authorization[6:].strip()
    elif query_token:
        given = query_token
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def authorized(
    service: Service, authorization: str | None, query_token: str | None, *, task_token: bool = False
) -> bool:
    """The service's token; or, where ``task_token`` allows it, the token given to tasks."""
    if token_ok(service.token, authorization, query_token):
        return True
    given_to_tasks = service.task_token
    return task_token and given_to_tasks is not None and token_ok(given_to_tasks, authorization, query_token)


class ApiError(tornado.web.HTTPError):
    """A client mistake found by a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, reason=None)
        self.code = code
        self.message = message


#: The largest request body (a workflow spec embeds its notebooks; a batch holds many events).
MAX_BODY_BYTES = 64 * 1024 * 1024

UNAUTHORIZED = "missing or wrong token (send 'Authorization: token <token>')"


_DIGITS = re.compile(r"[0-9]+")


def parse_count(text: str) -> int | None:
    """``text`` as a whole number of ASCII digits, or None (``int`` also takes "²", " 7", "+7" and "7_0").

    >>> parse_count("12"), parse_count("²"), parse_count("-1"), parse_count("1_0")
    (12, None, None, None)
    """
    return int(text) if _DIGITS.fullmatch(text) else None


def parse_integer(text: str) -> int | None:
    """``text`` as an integer of ASCII digits with an optional minus sign, or None."""
    count = parse_count(text.removeprefix("-"))
    return None if count is None else (-count if text.startswith("-") else count)


def check_declared_size(declared: str | None) -> None:
    """Refuse a body whose ``Content-Length`` is over the limit, before any of it is read."""
    size = parse_count(declared) if declared is not None else None
    if size is not None and size > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the request body ({size:,} bytes) is over {MAX_BODY_BYTES:,} bytes")


_DECODE = msgspec.json.Decoder().decode


def decode_json(data: bytes) -> Any:
    """A request body's JSON (an empty body is null)."""
    try:
        return _DECODE(data or b"null")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        # Read again as Python reads JSON, which words a mistake by line and column, and takes what
        # msgspec does not (1e400, a lone surrogate's escape): what it makes of those is then refused
        # by the check of what the body holds, in its words.
        return _decode_as_python(data)


def _decode_as_python(data: bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def encode_json(data: Any) -> bytes:
    """A response body; what JSON has no type for (a path, a datetime) as its text."""
    return msgspec.json.encode(data, enc_hook=str)


def status_of(exc: BaseException) -> int:
    """The HTTP status of a failed request's exception (500: not the client's mistake)."""
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code
    if isinstance(exc, errors.AiflowError):
        return next(s for cls, s in STATUS_OF if isinstance(exc, cls))
    return 500


def error_body(status: int, exc: BaseException | None, reason: str) -> dict[str, Any]:
    """``{"error": {"code", "message"}}`` for a failed request; an unexpected error says only where to look."""
    code, message = "http_error", reason
    if isinstance(exc, ApiError):
        code, message = exc.code, exc.message
    elif isinstance(exc, errors.AiflowError):
        code, message = exc.code, str(exc)
    elif isinstance(exc, tornado.web.HTTPError):
        message = exc.log_message or reason
    elif status >= 500:
        code, message = "internal_error", "internal error; see the service log"
    return {"error": {"code": code, "message": message}}


def log_failure(exc: BaseException, request: tornado.httputil.HTTPServerRequest) -> None:
    """A client mistake in one line; anything else with its traceback (by path: the query may hold a token)."""
    if isinstance(exc, (ApiError, errors.AiflowError)):
        level = logging.WARNING if isinstance(exc, errors.StorageError) else logging.INFO
        log.log(level, "%s %s: %s", request.method, request.path, exc)
    elif isinstance(exc, tornado.web.HTTPError):
        if exc.log_message:
            log.warning("%d %s: %s", exc.status_code, request_summary(request), exc.log_message)
    else:
        # Not tornado's default, which logs repr(request): its headers hold the token.
        log.error("uncaught exception in %s", request_summary(request), exc_info=(type(exc), exc, exc.__traceback__))


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Every handler needs the token (in the ``Authorization`` header) unless ``public`` is set.

    Bodies are streamed in: the token and the body's declared size are
    checked from the headers, before any of it is taken in, so nobody
    without the token (or with too large a body) makes the service buffer
    more than tornado's first read of the connection.
    """

    public = False
    #: The methods the token given to tasks may call too (it may only send events).
    task_token_methods: frozenset[str] = frozenset()
    service: Service

    def initialize(self, service: Service) -> None:
        self.service = service

    @property
    def engine(self) -> Any:
        return self.service.engine

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._prepared = False
        if not self.public and not authorized(
            self.service,
            self.request.headers.get("Authorization"),
            None,  # ?token= is for the WebSocket route alone: browsers cannot set its headers
            task_token=self.request.method in self.task_token_methods,
        ):
            raise ApiError(401, "unauthorized", UNAUTHORIZED)
        check_declared_size(self.request.headers.get("Content-Length"))
        # A chunked body without a length: the connection is closed once it grows past the limit.
        self.request.connection.set_max_body_size(MAX_BODY_BYTES)  # type: ignore[union-attr]
        self._prepared = True

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def send(self, data: Any, status: int = 200) -> None:
        """Answer ``data`` as JSON (bytes: JSON already)."""
        self.set_status(status)
        self.finish(data if isinstance(data, bytes) else encode_json(data))

    def body(self) -> Any:
        return decode_json(b"".join(self._chunks))

    def parameters(self) -> Any:
        """The ``parameters`` of an optional ``{"parameters": {...}}`` body (None without one)."""
        body = self.body()
        if body is None:
            return None
        if not isinstance(body, dict) or set(body) - {"parameters"}:
            raise ApiError(400, "invalid_parameter", 'send no body, or {"parameters": {name: value, ...}}')
        return body.get("parameters")

    def int_argument(self, name: str, default: int | None = None) -> int | None:
        """The query argument ``name`` as an integer of ASCII digits (a leading minus allowed), or 400."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        value = parse_integer(raw)
        if value is None:
            raise ApiError(400, "invalid_argument", f"query argument {name!r} must be an integer, got {raw!r}")
        return value

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if not getattr(self, "_prepared", False):
            # Refused before its body was read: tornado drops the connection after this answer, so
            # the client is told not to send its next request (a retry with a new token) on it.
            self.set_header("Connection", "close")
        self.finish(encode_json(error_body(status_code, exc, self._reason)))

    def _request_summary(self) -> str:
        return request_summary(self.request)  # by path: the query may hold ?token=

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_failure(value, self.request)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, errors.AiflowError) and not isinstance(e, tornado.web.HTTPError):
            status = status_of(e)
            self.log_exception(type(e), e, e.__traceback__)
            if not self._finished:
                self.send_error(status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class NotFoundHandler(BaseHandler):
    """Any path that is not in the API."""

    public = True

    def prepare(self) -> None:
        raise ApiError(404, "not_found", f"no such endpoint: {self.request.method} {self.request.path}")


class HealthHandler(BaseHandler):
    public = True

    def get(self) -> None:
        from aiflow_nb._version import __version__

        self.send({"status": "ok", "version": __version__, "latest_offset": self.service.latest_offset})
