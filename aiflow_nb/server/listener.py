"""The service's listening sockets: plain requests served off tornado's HTTP/1.1 connection.

``POST /api/v1/events`` is called thousands of times a second, one small
request each, on keep-alive connections.  tornado's HTTP/1.1 connection
(coroutines, futures and buffers per request) cost the IOLoop more than the
request's own work: on the 2-core test machine a bare message delegate
behind it answered 6,400-7,800 requests/s, the same answer from a plain
read-parse-write loop 43,000-50,000.  So each accepted connection starts
with a :class:`PlainConnection`: a request that arrived whole, in the
plainest form (HTTP/1.1, a ``Content-Length`` body of at most :data:`PEEK`
bytes or none, headers of tokens and printable text, no ``Expect``,
``Upgrade`` or ``Transfer-Encoding``), goes to the router's delegate for it,
the one tornado would call.  At the first request in any other form (a
WebSocket, a chunked or large or partly arrived body, HTTP/1.0,
``Connection: close``, a header this reader does not take) the connection
goes to tornado's ``HTTPServer`` for the rest of its life, which reads and
words it as always.

A request is looked at with ``MSG_PEEK`` and taken off the socket only once
it is served here, so the hand-over gives tornado nothing back: it reads the
request from the socket as if it were the first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.routing
from tornado import httputil

log = logging.getLogger("aiflow_nb.server.listener")

#: Bytes looked at per read: a request whose head and body do not fit goes to tornado.
PEEK = 65_536

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) (/[\x21-\x7e]*) HTTP/1\.1")
#: Every header line: a token, a colon and printable text (obs-text included, no folding).
_FIELDS = re.compile(rf"(?:\r\n{_TOKEN}:[\t\x20-\x7e\x80-\xff]*)*")
#: One header line of those (trailing whitespace left on the value).
_FIELD = re.compile(r"\r\n([^:]*):[ \t]*([^\r]*)")
#: Headers whose requests tornado reads: they change how the body or the connection is read.
_TORNADO_S = frozenset(("transfer-encoding", "expect", "upgrade", "te"))


@dataclass(frozen=True)
class Context:
    """What ``HTTPServerRequest`` reads from its connection's context."""

    remote_ip: str
    protocol: str = "http"


@dataclass(frozen=True)
class Head:
    start_line: httputil.RequestStartLine
    headers: httputil.HTTPHeaders
    length: int


def read_head(head: bytes) -> Head | None:
    """The request whose head (up to its blank line) is ``head``, if in the form served here.

    None: tornado's to read (and to word, if it is wrong).

    >>> read_head(b"POST /api/v1/events HTTP/1.1\\r\\nContent-Length: 2").length
    2
    >>> read_head(b"POST /api/v1/events HTTP/1.1\\r\\nTransfer-Encoding: chunked") is None
    True
    """
    text = head.decode("latin1")
    line = _REQUEST_LINE.match(text)
    if line is None or not _FIELDS.fullmatch(text, line.end()):
        return None
    fields = [(name, value.rstrip(" \t")) for name, value in _FIELD.findall(text, line.end())]
    length = None
    names = set()
    for name, value in fields:
        lowered = name.lower()
        names.add(lowered)
        if lowered in _TORNADO_S:
            return None
        if lowered == "content-length":
            if length is not None or not value.isascii() or not value.isdigit():
                return None
            length = int(value)
        elif lowered == "connection" and value.lower() != "keep-alive":
            return None
    if len(names) == len(fields):
        headers = httputil.HTTPHeaders(dict(fields))
    else:  # a name repeated: its values joined as tornado joins them
        headers = httputil.HTTPHeaders()
        for name, value in fields:
            headers.add(name, value)
    start_line = httputil.RequestStartLine(line[1], line[2], "HTTP/1.1")
    return Head(start_line, headers, length or 0)


class Listener:
    """Accepts the service's connections (see the module's docstring).

    ``router`` finds each request's delegate; ``server`` serves the connections handed over.
    A connection with no request for ``idle_timeout`` seconds is closed (tornado's
    ``HTTPServer`` closes its own after its ``idle_connection_timeout``, an hour by default).
    """

    def __init__(
        self, server: tornado.httpserver.HTTPServer, router: tornado.routing.Router, idle_timeout: float = 3600.0
    ) -> None:
        self.server = server
        self.router = router
        self.idle_timeout = idle_timeout
        self.connections: set[PlainConnection] = set()
        self.stopping = False
        self._sockets: list[socket.socket] = []
        self._removers: list[Callable[[], None]] = []
        self._sweeper: asyncio.TimerHandle | None = None

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets.append(sock)
            self._removers.append(tornado.netutil.add_accept_handler(sock, self._accepted))
        if self._sweeper is None:
            self._sweep()

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time() - self.idle_timeout
        for connection in [c for c in self.connections if c.delegate is None and c.last_active < idle_since]:
            connection.close()
        self._sweeper = loop.call_later(min(self.idle_timeout / 4, 60.0), self._sweep)

    def _accepted(self, sock: socket.socket, address: Any) -> None:
        if self.stopping:
            sock.close()
            return
        PlainConnection(self, sock, address)

    def hand_over(self, sock: socket.socket, address: Any) -> None:
        """tornado serves the connection from here on."""
        stream = tornado.iostream.IOStream(
            sock, max_buffer_size=self.server.max_buffer_size, read_chunk_size=self.server.read_chunk_size
        )
        self.server.handle_stream(stream, address)

    def stop(self) -> None:
        """Accept no more connections (those open stay open)."""
        for remove in self._removers:
            remove()
        for sock in self._sockets:
            sock.close()
        self._removers, self._sockets = [], []
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def close_all(self, timeout: float = 10.0) -> None:
        """Close every connection, each once its request in progress is answered; then tornado's."""
        self.stopping = True
        for connection in list(self.connections):
            if connection.delegate is None:
                connection.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close()
        await self.server.close_all_connections()


class PlainConnection(httputil.HTTPConnection):
    """A connection while its requests come in the plain form: each read whole, served, answered in turn."""

    def __init__(self, listener: Listener, sock: socket.socket, address: Any) -> None:
        self.listener = listener
        self.sock = sock
        self.address = address
        self.context = Context(address[0] if isinstance(address, tuple) else "")
        self.loop = asyncio.get_running_loop()
        self.fd = sock.fileno()
        #: When its last answer was written (the loop's clock): idle connections are closed.
        self.last_active = self.loop.time()
        #: The request being served (None between requests).
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.method = ""
        #: Its body was delivered: the delegate no longer needs telling of a close.
        self._delivered = False
        self._close_callback: Callable[[], None] | None = None
        self._answer: list[bytes] = []
        self._chunked = False
        self._unsent = b""
        self._reading = False
        self._written = self.loop.create_future()
        self._written.set_result(None)
        listener.connections.add(self)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an answer is one write
        except OSError:  # the client already left
            self.close()
            return
        self._read()

    # -- reading --------------------------------------------------------------------------------

    def _read(self) -> None:
        if not self._reading:
            self.loop.add_reader(self.fd, self._readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False

    def _readable(self) -> None:
        try:
            data = self.sock.recv(PEEK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()  # the client left
            return
        if self.delegate is not None:
            self._pause()  # a pipelined request: it waits for the answer before it
            return
        if self.listener.stopping:
            self.close()
            return
        end = data.find(b"\r\n\r\n")
        head = read_head(data[:end]) if end >= 0 else None
        size = end + 4 + head.length if head is not None else 0
        if head is None or len(data) < size:
            self._hand_over()
            return
        try:
            self.sock.recv(size)  # the request is taken off the socket: peeked, so all there
        except OSError:
            self.close()
            return
        self._serve(head, data[end + 4 : size])

    def _serve(self, head: Head, body: bytes) -> None:
        request = httputil.HTTPServerRequest(start_line=head.start_line, headers=head.headers, connection=self)
        self._delivered = False
        self.method = head.start_line.method
        try:
            delegate = self.delegate = self.listener.router.find_handler(request)
            assert delegate is not None
            prepared = delegate.headers_received(head.start_line, head.headers)
        except Exception:
            self._uncaught(head)
            return
        if prepared is None:
            self._deliver(delegate, head, body)
        else:
            # A RequestHandler streaming its body: it checks the headers (its prepare()) first.
            asyncio.ensure_future(prepared).add_done_callback(lambda _: self._deliver(delegate, head, body))

    def _deliver(self, delegate: httputil.HTTPMessageDelegate, head: Head, body: bytes) -> None:
        if self.delegate is not delegate or self._delivered:
            return  # answered already (a refusal from the headers), or the client left
        self._delivered = True
        try:
            received: Awaitable[None] | None = delegate.data_received(body) if body else None
        except Exception:
            self._uncaught(head)
            return
        if received is None:
            self._finish_delivery(delegate, head)
        else:
            asyncio.ensure_future(received).add_done_callback(lambda _: self._finish_delivery(delegate, head))

    def _finish_delivery(self, delegate: httputil.HTTPMessageDelegate, head: Head) -> None:
        if self.delegate is not delegate:
            return
        try:
            delegate.finish()
        except Exception:
            self._uncaught(head)

    def _uncaught(self, head: Head) -> None:
        # As tornado's connection does: logged, and the request's client sees the connection end.
        log.exception("uncaught error serving %s %s", head.start_line.method, head.start_line.path)
        self.close()

    def _hand_over(self) -> None:
        self._pause()
        self.listener.connections.discard(self)
        self.listener.hand_over(self.sock, self.address)

    # -- the HTTPConnection the delegate writes to ----------------------------------------------

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        code = start_line.code
        # tornado's rule: an answer with a body but no length is sent chunked.
        self._chunked = (
            "Content-Length" not in headers and code >= 200 and code not in (204, 304) and self.method != "HEAD"
        )
        if self._chunked:
            headers["Transfer-Encoding"] = "chunked"
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        lines.extend(f"{name}: {value}" for name, value in headers.get_all())
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError(f"illegal characters (CR or LF) in a header: {lines!r}")
        self._answer = ["\r\n".join(lines).encode("latin1") + b"\r\n\r\n"]
        if chunk:
            self.write(chunk)
        return self._written

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        if chunk:
            self._answer.append(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk)
        return self._written

    def finish(self) -> None:
        if self._chunked:
            self._answer.append(b"0\r\n\r\n")
        data, self._answer = b"".join(self._answer), []
        self._send(data)

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self._close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        pass  # the body was read whole before the delegate saw the headers (and is under PEEK)

    # -- writing --------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self._unsent = data[sent:]
            self.loop.add_writer(self.fd, self._writable)
            return
        self._answered()

    def _writable(self) -> None:
        data, self._unsent = self._unsent, b""
        self.loop.remove_writer(self.fd)
        self._send(data)

    def _answered(self) -> None:
        self.delegate = None
        self.last_active = self.loop.time()
        self._close_callback = None
        if self.listener.stopping:
            self.close()
            return
        self._read()

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        self._pause()
        self.loop.remove_writer(self.fd)
        self.sock.close()
        self.listener.connections.discard(self)
        delegate, self.delegate = self.delegate, None
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()
        if delegate is not None and not self._delivered:
            delegate.on_connection_close()
