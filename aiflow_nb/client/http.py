"""Calls to the service over one keep-alive ``httpx.Client``, retried across a restart of the service.

A call that fails to connect reads the home's ``server.json`` again (a
restarted service has a new port and token).  A safe call (``retry=True``)
is repeated until ``retry_for`` seconds have passed; a keyed call sends the
same ``Idempotency-Key`` each time, so a repeated append is not doubled.  A
refused connection sent nothing, so any call goes on at once to a service
that replaced the old one.  An error answer raises the
:mod:`aiflow_nb.errors` type its JSON ``code`` names.
"""

from __future__ import annotations

import enum
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from aiflow_nb import errors
from aiflow_nb._version import __version__
from aiflow_nb.client.discovery import Endpoint

log = logging.getLogger("aiflow_nb.client.http")

#: The API's root below the service's URL.
PREFIX = "/api/v1"
#: Socket options of every connection: each write is sent at once.
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
#: The first pause between tries of a retried call; it doubles up to :data:`MAX_PAUSE`.
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0


class Failure(enum.Enum):
    """What a failed exchange means for a retry."""

    #: Refused: nothing was sent, the call may go anywhere.
    REFUSED = "refused"
    #: Lost midway (reset, cut off, timed out): only a safe or keyed call is repeated.
    LOST = "lost"
    #: No route to the host, a name that does not resolve: trying again does not help.
    UNREACHABLE = "unreachable"


def _root(exc: BaseException) -> BaseException:
    """The exception at the bottom of the chain httpx and httpcore raise from."""
    seen = {id(exc)}
    while True:
        below = exc.__cause__ or exc.__context__
        if below is None or id(below) in seen:
            return exc
        seen.add(id(below))
        exc = below


def classify(exc: httpx.TransportError) -> Failure:
    """What a transport error of httpx means: refused, lost or unreachable."""
    root = _root(exc)
    if isinstance(root, ConnectionRefusedError):
        return Failure.REFUSED
    if isinstance(exc, httpx.ConnectError) and not isinstance(root, (ConnectionError, TimeoutError)):
        return Failure.UNREACHABLE  # a name that does not resolve, no route to the host
    if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return Failure.LOST
    return Failure.UNREACHABLE


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed error of an error answer (its JSON ``code``), or ``AiflowError`` for any other."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {response.status_code}: {response.content[:200]!r}"
    raise errors.error_class(code)(message)


class Http:
    """The client's connection to the service: an endpoint found by ``find``, and an ``httpx.Client``.

    Threads share it (httpx's pool is thread-safe); the endpoint is replaced
    as a whole, under a lock, when a call finds the service moved.
    """

    def __init__(self, find: Callable[[], Endpoint], *, timeout: float, retry_for: float) -> None:
        self._find = find
        self._lock = threading.Lock()
        self._endpoint = find()
        self.timeout = timeout
        self.retry_for = retry_for
        transport = httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            # A request's head and body go out in two writes: without this the body waits for
            # the head's acknowledgement (Nagle's algorithm against delayed ACKs).
            socket_options=NO_DELAY,
        )
        self._client = httpx.Client(
            transport=transport,
            timeout=timeout,
            # Loopback only: a proxy from the environment must not see the token.
            trust_env=False,
            headers={"User-Agent": f"aiflow-nb/{__version__}"},
        )

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def rediscover(self) -> Endpoint:
        """Find the service again (it may have restarted elsewhere); the endpoint stays if none is found."""
        try:
            found = self._find()
        except errors.ServiceUnavailableError:
            return self._endpoint
        with self._lock:
            self._endpoint = found
        return found

    def close(self) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] | None = None,
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
        retry: bool = False,
        keyed: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One call of the API (``path`` below ``/api/v1``); raises the typed error of an error answer.

        ``body``: bytes, or chunks sent chunked as they come (iterable again
        for a retry).  ``retry``: repeat it while the service does not answer
        (only for calls that are safe to repeat).  ``keyed``: send an
        ``Idempotency-Key``, the same on every try.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        deadline = time.monotonic() + self.retry_for
        pause = FIRST_PAUSE
        request_key = uuid.uuid4().hex if keyed else None
        token_checked = False
        while True:
            endpoint = self._endpoint
            headers = {"Authorization": f"token {endpoint.token}"}
            if body is not None:
                headers["Content-Type"] = content_type
            if request_key is not None:
                headers["Idempotency-Key"] = request_key
            try:
                response = self._client.request(
                    method,
                    endpoint.url + PREFIX + path,
                    params=query,
                    content=body,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except httpx.TransportError as exc:
                failure = classify(exc)
                if failure is Failure.UNREACHABLE:
                    raise errors.ServiceUnavailableError(
                        f"cannot reach the aiflow-nb service at {endpoint.url} ({_reason(exc)})"
                    ) from None
                found = self.rediscover()
                moved = failure is Failure.REFUSED and found.url != endpoint.url
                if not (retry or moved) or time.monotonic() > deadline:
                    raise errors.ServiceUnavailableError(
                        f"the aiflow-nb service at {endpoint.url} does not answer ({_reason(exc)})"
                    ) from None
                if not moved:
                    log.debug("%s %s: %s; trying again", method, path, exc)
                    time.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE)
                continue
            if response.status_code == 401 and not token_checked:
                # The request was refused before it did anything: a service restarted with a
                # new token (on the same address) takes it again.
                token_checked = True
                if self.rediscover() != endpoint:
                    continue
            raise_for_error(response)
            return response


def _reason(exc: BaseException) -> str:
    root = _root(exc)
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    return str(exc) or type(exc).__name__
