"""The listener: plain requests served off tornado's HTTP/1.1 connection, every other form handed to tornado."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import urllib.parse
from typing import Any, BinaryIO

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from aiflow_nb.server.listener import PEEK, Listener, read_head
from tests.conftest import RunningService

PREFIX = "/api/v1"


@pytest.mark.parametrize(
    ("head", "length"),
    [
        (b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 12", 12),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: x", 0),
        (b"GET /api/v1/events?since=3&key=a HTTP/1.1\r\nConnection: keep-alive\r\nX-Empty:", 0),
        (b"GET /api/v1/health HTTP/1.1\r\nX-Twice: a\r\nx-twice: b \t\r\nHost: x", 0),
        (b"POST /api/v1/events HTTP/1.1\r\ncontent-length:  7 \r\nX-Latin: caf\xe9", 7),
        # Forms tornado reads (and words, where wrong):
        (b"POST /api/v1/events HTTP/1.1\r\nTransfer-Encoding: chunked", None),
        (b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue", None),
        (b"GET /api/v1/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade", None),
        (b"POST /api/v1/events HTTP/1.1\r\nConnection: close\r\nContent-Length: 2", None),
        (b"POST /api/v1/events HTTP/1.0\r\nContent-Length: 2", None),
        (b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2", None),
        (b"POST /api/v1/events HTTP/1.1\r\nContent-Length: -2", None),
        (b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 0x10", None),
        (b"POST /api/v1/events HTTP/1.1\r\nContent-Length: \xb2", None),
        (b"POST /api/v1/events HTTP/1.1\r\nno colon here", None),
        (b"POST /api/v1/events HTTP/1.1\r\nBad Name: x", None),
        (b"POST /api/v1/events HTTP/1.1\r\n folded: x", None),
        (b"POST /api/v1/events HTTP/1.1\r\nX: a\nb", None),
        (b"POST /api/v1/events HTTP/1.1\r\nX: a\x00b", None),
        (b"POST  /api/v1/events HTTP/1.1", None),
        (b"POST http://x/api/v1/events HTTP/1.1", None),
        (b"POST /api/v1/ev ents HTTP/1.1", None),
        (b"\r\nPOST /api/v1/events HTTP/1.1", None),
        (b"P\xc3ST /api/v1/events HTTP/1.1", None),
    ],
)
def test_read_head_takes_only_the_plainest_form(head: bytes, length: int | None) -> None:
    read = read_head(head)
    assert (read.length if read is not None else None) == length
    if read is not None:
        assert read.start_line.version == "HTTP/1.1"
        assert read.headers.get("Host", "x") == "x"
        assert read.headers.get("X-Twice", "a,b") == "a,b"  # joined as tornado joins a repeated name


# -- a listener in this process, in front of a small tornado application ----------------------------


class Pieces(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write("one,")
        await self.flush()  # no length known yet: the answer goes chunked
        self.write("two")


class Big(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(b"x" * BIG)


BIG = 8 * 1024 * 1024  # more than a socket's send buffer: the answer is written in several goes


class Echo(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write(self.request.body)


class Ping(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("pong")

    head = get  # tornado sends the length of what was written, and no body


def test_a_flushed_answer_is_chunked_a_large_one_whole_and_an_idle_connection_closed() -> None:
    async def main() -> tuple[bytes, bytes, bytes, int, bytes]:
        app = tornado.web.Application([("/pieces", Pieces), ("/ping", Ping), ("/big", Big)])
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        listener = Listener(server, app, idle_timeout=0.2)
        listener.add_sockets(sockets)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", sockets[0].getsockname()[1])
            writer.write(b"GET /pieces HTTP/1.1\r\nHost: x\r\n\r\n")
            pieces = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
            writer.write(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            ping = await asyncio.wait_for(reader.readuntil(b"pong"), 10)
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            big_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert f"\r\nContent-Length: {BIG}\r\n".encode() in big_head
            assert await asyncio.wait_for(reader.readexactly(BIG), 30) == b"x" * BIG
            served_here = len(listener.connections)
            # Idle past the timeout: the listener closes it.
            closed = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return pieces, head, ping, served_here, closed
        finally:
            listener.stop()
            await listener.close_all()

    pieces, head, ping, served_here, closed = asyncio.run(main())
    assert pieces.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in pieces and b"Content-Length" not in pieces
    assert pieces.endswith(b"\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")
    # HEAD: the length of the body a GET would get, and no body.
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Length: 4\r\n" in head
    assert ping.startswith(b"HTTP/1.1 200 OK\r\n") and ping.endswith(b"\r\n\r\npong")
    assert served_here == 1 and closed == b""


class Recording(Listener):
    """Counts the connections it hands to tornado."""

    handed = 0

    def hand_over(self, sock: socket.socket, address: Any) -> None:
        self.handed += 1
        super().hand_over(sock, address)


@pytest.mark.parametrize("cut", [20, -3], ids=["in the head", "in the body"])
def test_a_request_arriving_in_pieces_goes_to_tornado_and_is_read_whole(cut: int) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"

    async def main() -> tuple[bytes, bytes]:
        app = tornado.web.Application([("/echo", Echo)])
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        listener = Recording(server, app)
        listener.add_sockets(sockets)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", sockets[0].getsockname()[1])
            writer.write(data[:cut])
            # The listener hands the connection to tornado once it has seen the piece.
            deadline = asyncio.get_running_loop().time() + 10
            while not listener.handed and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert listener.handed == 1 and not listener.connections
            writer.write(data[cut:])
            first = await asyncio.wait_for(reader.readuntil(b"hello world"), 10)
            writer.write(data)  # the next request on it: tornado's too
            second = await asyncio.wait_for(reader.readuntil(b"hello world"), 10)
            writer.close()
            return first, second
        finally:
            listener.stop()
            await listener.close_all()

    first, second = asyncio.run(main())
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and second.startswith(b"HTTP/1.1 200 OK\r\n")


# -- a real service, spoken to on raw sockets ------------------------------------------------------


def connect(service: RunningService) -> tuple[socket.socket, BinaryIO]:
    parsed = urllib.parse.urlsplit(service.info.url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=60)
    return sock, sock.makefile("rb")


def request(
    method: str, path: str, token: str | None, body: bytes | None = None, headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token is not None:
        lines.append(f"Authorization: token {token}")
    fields = dict(headers or {})
    if body is not None and "Transfer-Encoding" not in fields:
        fields.setdefault("Content-Length", str(len(body)))
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def read_answer(reader: BinaryIO, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One answer from the connection: status, headers (lower-case names), body."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only:
        return int(status_line.split()[1]), headers, b""
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int(reader.readline().strip(), 16):
            body += reader.read(size)
            reader.readline()
        reader.readline()
    else:
        body = reader.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def event(key: str, value: Any = None) -> bytes:
    return json.dumps({"key": key, "value": value}).encode()


def test_requests_of_every_route_share_one_connection(service: RunningService) -> None:
    token = service.info.token
    sock, reader = connect(service)
    with sock, reader:
        exchanges = [
            request("GET", PREFIX + "/health", None),
            request("POST", PREFIX + "/events", token, event("shared", 1), {"Idempotency-Key": "shared-1"}),
            request("POST", PREFIX + "/events", token, event("shared", 1), {"Idempotency-Key": "shared-1"}),
            request("POST", PREFIX + "/events", None, event("shared", 2)),
            request("POST", PREFIX + "/events", token, b'{"key": '),
            request("GET", PREFIX + "/events?key=shared", token),
            request("GET", PREFIX + "/workflows", token),
            request("GET", PREFIX + "/no-such-thing", token),
            request("HEAD", PREFIX + "/health", None),
            request("POST", PREFIX + "/events", token, event("shared", 3)),
        ]
        answers = []
        for data in exchanges:
            sock.sendall(data)
            answers.append(read_answer(reader, head_only=data.startswith(b"HEAD")))
        statuses = [status for status, _, _ in answers]
        bodies = [json.loads(body) if body else None for _, _, body in answers]
    assert statuses == [200, 200, 200, 401, 400, 200, 200, 404, 405, 200]
    first = bodies[1]["offset"]
    assert bodies[2] == {"offset": first}  # the retried key: the first offset, nothing appended
    assert bodies[3]["error"]["code"] == "unauthorized"
    assert bodies[4]["error"]["code"] == "invalid_json"
    assert [(e["offset"], e["value"]) for e in bodies[5]["events"]] == [(first, 1)]
    assert bodies[6] == {"workflows": []}
    assert bodies[7]["error"]["code"] == "not_found"
    assert bodies[9] == {"offset": first + 1}
    for _, headers, _ in answers:
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert headers["server"].startswith("TornadoServer/")


def test_pipelined_requests_are_answered_in_order(service: RunningService) -> None:
    token = service.info.token
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(b"".join(request("POST", PREFIX + "/events", token, event("piped", i)) for i in range(5)))
        offsets = [json.loads(read_answer(reader)[2])["offset"] for _ in range(5)]
        sock.sendall(request("GET", PREFIX + "/events?key=piped", token))
        listed = json.loads(read_answer(reader)[2])["events"]
    assert offsets == list(range(offsets[0], offsets[0] + 5))
    assert [(e["offset"], e["value"]) for e in listed] == list(zip(offsets, range(5), strict=True))


def test_other_forms_are_served_by_tornado_on_the_same_connection(service: RunningService) -> None:
    token = service.info.token
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(request("POST", PREFIX + "/events", token, event("forms", "plain")))
        first = json.loads(read_answer(reader)[2])["offset"]
        # A body larger than the listener looks at: the JSON form of a batch, with its length.
        batch = json.dumps({"events": [{"key": "forms", "value": "x" * 90} for _ in range(PEEK // 50)]}).encode()
        assert len(batch) > PEEK
        sock.sendall(request("POST", PREFIX + "/events", token, batch))
        status, _, body = read_answer(reader)
        assert status == 200 and len(json.loads(body)["offsets"]) == PEEK // 50
        # Expect: 100-continue, answered "continue" before the body is sent.
        body = event("forms", "expected")
        sock.sendall(
            request(
                "POST", PREFIX + "/events", token, b"", {"Content-Length": str(len(body)), "Expect": "100-continue"}
            )
        )
        assert reader.readline().startswith(b"HTTP/1.1 100 ")
        assert reader.readline() == b"\r\n"
        sock.sendall(body)
        status, _, answer = read_answer(reader)
        assert status == 200
        expected = json.loads(answer)["offset"]
        # A chunked body, then a plain request again: still this one connection.
        sock.sendall(
            request("POST", PREFIX + "/events", token, b"", {"Transfer-Encoding": "chunked"})
            + b"%x\r\n%b\r\n0\r\n\r\n" % (len(event("forms", "chunked")), event("forms", "chunked"))
        )
        chunked = json.loads(read_answer(reader)[2])["offset"]
        sock.sendall(request("GET", PREFIX + "/events?key=forms&limit=10000", token))
        listed = json.loads(read_answer(reader)[2])["events"]
    assert expected == first + PEEK // 50 + 1 and chunked == expected + 1
    assert [e["value"] for e in listed if e["value"] != "x" * 90] == ["plain", "expected", "chunked"]


def test_a_malformed_head_is_worded_by_tornado(service: RunningService) -> None:
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}")
        status, _, _ = read_answer(reader)
        assert status == 400
        assert reader.read() == b""  # and the connection is closed


def test_stop_answers_the_request_in_progress_and_closes_idle_connections(service: RunningService) -> None:
    token = service.info.token
    idle, idle_reader = connect(service)
    busy, busy_reader = connect(service)
    with idle, idle_reader, busy, busy_reader:
        idle.sendall(request("GET", PREFIX + "/health", None))
        assert read_answer(idle_reader)[0] == 200
        busy.sendall(request("POST", PREFIX + "/events", token, event("stopping")))
        service.kill(signal.SIGTERM)  # waits for the process to end
        assert service.returncode == 0
        answered = busy_reader.peek(1) != b""
        status, _, body = read_answer(busy_reader) if answered else (0, {}, b"")
        assert idle_reader.read() == b"" and busy_reader.read() == b""
    # Answered before the stop (then stored once), or never read (then closed unanswered, not stored).
    restarted = RunningService(service.home).start()
    try:
        stored = [e.offset for e in restarted.client().events(key="stopping")]
    finally:
        restarted.stop()
    assert stored == ([json.loads(body)["offset"]] if answered else [])
    if answered:
        assert status == 200
