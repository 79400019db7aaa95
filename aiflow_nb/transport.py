"""One keep-alive HTTP/1.1 connection: what :class:`~aiflow_nb.client.Client` needs of ``http.client``.

``http.client`` reads every response's headers with the ``email`` package:
on the 2-core test machine a ``Client.send_event`` cost 300-370 µs of the
sender's CPU, and 50 sending threads spent more of the two cores than the
service answering them.  This reads a response's head with a few byte
splits: 160-170 µs a ``send_event``.  It speaks the part of HTTP/1.1 a
client of the service meets: a body by ``Content-Length``, chunked, or up to
the end of the connection; interim 1xx answers skipped; the connection kept
unless the answer closes it.

>>> conn = Connection("127.0.0.1", 8888, timeout=60)           # doctest: +SKIP
>>> conn.request("GET", "/api/v1/health", {}, None).status      # doctest: +SKIP
200
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Methods whose request carries a body: one without gets ``Content-Length: 0`` (as http.client sends).
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: A response head larger than this is not the service's.
MAX_HEAD = 64 * 1024
_READ = 65536


class ProtocolError(Exception):
    """The other end answered something this client cannot read as an HTTP/1.1 response."""


class ConnectionEnded(ConnectionResetError):
    """The connection ended inside an answer: lost (a service killed midway), not a wrong answer."""


@dataclass
class Response:
    status: int
    reason: str
    #: Names in lower case; a repeated header's values joined by ", ".
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Connection:
    """A connection to ``host:port``, opened at the first request and kept between requests.

    Not thread-safe: the client keeps one per thread.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | Iterable[bytes] | None
    ) -> Response:
        """Send a request and read its answer.

        ``body``: bytes, or an iterable of chunks sent with chunked transfer
        coding as they come.  Connection failures raise ``ConnectionError`` or
        ``TimeoutError`` (the connection is then closed), an answer cut off by
        the end of the connection included; an answer that is not HTTP raises
        :class:`ProtocolError`.
        """
        sock = self._sock or self._connect()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        chunks: Iterable[bytes] | None = None
        data = b""
        if isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
        elif body is not None:
            chunks = body
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
        elif body is not None or method in _WITH_BODY:
            lines.append(f"Content-Length: {len(data)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            try:
                if chunks is None:
                    sock.sendall(head + data)
                else:
                    sock.sendall(head)
                    for chunk in chunks:
                        if chunk:
                            sock.sendall(b"%X\r\n%b\r\n" % (len(chunk), chunk))
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                # The service may have answered before the whole body (a wrong token) and closed:
                # that answer says more than the broken pipe.
                answer = self._answer_left(method)
                if answer is None:
                    raise
                return answer
            return self._read_response(method)
        except BaseException:
            self.close()  # half a request or half an answer: the connection cannot be reused
            raise

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        # A request is one write and its answer one read: nothing gains from waiting to fill packets.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buffer.clear()
        return sock

    def _answer_left(self, method: str) -> Response | None:
        try:
            return self._read_response(method)
        except (OSError, ProtocolError):
            return None

    def _fill(self) -> bool:
        """Read what has arrived into the buffer; False at the end of the connection."""
        assert self._sock is not None
        data = self._sock.recv(_READ)
        self._buffer += data
        return bool(data)

    def _read_response(self, method: str) -> Response:
        while True:
            status, reason, version, headers = self._read_head()
            if not 100 <= status < 200:  # an interim answer (100 Continue) is followed by the real one
                break
        response = Response(status, reason, headers)
        tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
        close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        if method == "HEAD" or status in (204, 304):
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            response.body = self._read_chunked()
        elif "content-length" in headers:
            length = headers["content-length"]
            if not (length.isascii() and length.isdigit()):
                raise ProtocolError(f"a Content-Length that is not a number: {length[:40]!r}")
            response.body = self._take(int(length))
        else:
            while self._fill():  # the body ends with the connection
                pass
            response.body = bytes(self._buffer)
            self._buffer.clear()
            close = True
        if close:
            self.close()
        return response

    def _read_head(self) -> tuple[int, str, str, dict[str, str]]:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise ProtocolError(f"no end of the response head in its first {MAX_HEAD:,} bytes")
            if not self._fill():
                if not buffer:
                    raise ConnectionResetError("the service closed the connection without answering")
                if not buffer.startswith(b"HTTP/1."):
                    first = bytes(buffer.split(b"\r\n", 1)[0][:80])
                    raise ProtocolError(f"not an HTTP/1.1 status line: {first.decode('latin-1')!r}")
                raise ConnectionEnded(f"the connection ended inside the response head: {bytes(buffer[:80])!r}")
        head = buffer[:end].decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        version, _, rest = head[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not (code.isascii() and code.isdigit() and len(code) == 3):
            raise ProtocolError(f"not an HTTP/1.1 status line: {head[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"not a header line: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return int(code), reason, version, headers

    def _take(self, size: int) -> bytes:
        """The next ``size`` bytes of the connection."""
        buffer = self._buffer
        while len(buffer) < size:
            if not self._fill():
                raise ConnectionEnded(f"the connection ended {size - len(buffer):,} bytes before the end of the body")
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def _line(self) -> bytes:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise ProtocolError("a chunk size line without end")
            if not self._fill():
                raise ConnectionEnded("the connection ended inside a chunked body")
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"not a chunk size: {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._take(size))
            if self._take(2) != b"\r\n":
                raise ProtocolError("a chunk does not end with CRLF")
