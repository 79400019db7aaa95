"""HTTP framing, as tornado reads it: every route on one kept-alive connection, pipelining, chunked
and announced bodies, malformed heads and lengths, oversized bodies, the connection cap and the timeout
of a request head that never ends, and a stop that answers the request in progress."""

from __future__ import annotations

import json
import signal
import socket
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from aiflow_nb.server.connections import connection_cap
from aiflow_nb.server.handlers.base import MAX_BODY_BYTES
from tests.conftest import RunningService
from tests.server import wait

PREFIX = "/api/v1"
#: A body larger than one read of the connection.
LARGE = 65_536


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


def read_to_end(reader: BinaryIO) -> bytes:
    """What is left until the service closes the connection (a reset: closed with unread data)."""
    try:
        return reader.read()
    except ConnectionResetError:
        return b""


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
            request("POST", PREFIX + "/events", token, b'{"key": '),
            request("GET", PREFIX + "/events?key=shared", token),
            request("GET", PREFIX + "/workflows", token),
            request("HEAD", PREFIX + "/health", None),
            request("POST", PREFIX + "/events", token, event("shared", 3)),
            # Refused from its head alone (as a 401 or 413 is): tornado closes the connection after it.
            request("GET", PREFIX + "/no-such-thing", token),
        ]
        answers = []
        for data in exchanges:
            sock.sendall(data)
            answers.append(read_answer(reader, head_only=data.startswith(b"HEAD")))
        statuses = [status for status, _, _ in answers]
        bodies = [json.loads(body) if body else None for _, _, body in answers]
        assert read_to_end(reader) == b""
    assert statuses == [200, 200, 200, 400, 200, 200, 405, 200, 404]
    first = bodies[1]["offset"]
    assert bodies[2] == {"offset": first}  # the retried key: the first offset, nothing appended
    assert bodies[3]["error"]["code"] == "invalid_json"
    assert [(e["offset"], e["value"]) for e in bodies[4]["events"]] == [(first, 1)]
    assert bodies[5] == {"workflows": []}
    assert bodies[7] == {"offset": first + 1}
    assert bodies[8]["error"]["code"] == "not_found"
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


def test_large_announced_and_chunked_bodies_share_the_connection(service: RunningService) -> None:
    token = service.info.token
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(request("POST", PREFIX + "/events", token, event("forms", "plain")))
        first = json.loads(read_answer(reader)[2])["offset"]
        # A large body: the JSON form of a batch, with its length.
        batch = json.dumps({"events": [{"key": "forms", "value": "x" * 90} for _ in range(LARGE // 50)]}).encode()
        assert len(batch) > LARGE
        sock.sendall(request("POST", PREFIX + "/events", token, batch))
        status, _, body = read_answer(reader)
        assert status == 200 and len(json.loads(body)["offsets"]) == LARGE // 50
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
    assert expected == first + LARGE // 50 + 1 and chunked == expected + 1
    assert [e["value"] for e in listed if e["value"] != "x" * 90] == ["plain", "expected", "chunked"]


@pytest.mark.parametrize(
    "head",
    [
        b"POST /api/v1/events HTTP/1.1\r\nno colon here\r\nContent-Length: 2",
        b"POST /api/v1/events HTTP/1.1\r\nContent-Length: -2",
        b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 0x10",
        b"POST /api/v1/events HTTP/1.1\r\nContent-Length: \xb2",
        b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3",
        b"POST /api/v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2",
        b"POST /api/v1/events HTTP/1.1\r\nTransfer-Encoding: gzip",
        b"GET /api/v1/health HTTP/1.1\r\n folded: x",
        b"GET /api/v1/health HTTP/2.0",
        b"GET /api/v1/health",
    ],
)
def test_a_malformed_head_is_answered_400_and_the_connection_closed(service: RunningService, head: bytes) -> None:
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(head + b"\r\n\r\n{}")
        status_line = reader.readline()
        assert status_line in (b"", b"HTTP/1.1 400 Bad Request\r\n"), status_line  # answered, or closed
        reader.read()  # and the connection is closed: read to its end
    assert call_ok(service)  # the service still answers


def test_a_body_over_the_limit_is_refused_413_before_it_is_read(service: RunningService) -> None:
    token = service.info.token
    sock, reader = connect(service)
    with sock, reader:
        size = MAX_BODY_BYTES + 1
        sock.sendall(request("POST", PREFIX + "/events", token, b"", {"Content-Length": str(size)}))
        status, _, body = read_answer(reader)
        assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
        assert reader.read() == b""  # closed: the body is never read
    # Chunked, it announces no length: the connection is closed once it passes the limit.
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(request("POST", PREFIX + "/events", token, b"", {"Transfer-Encoding": "chunked"}))
        piece = b"x" * (1024 * 1024)
        try:
            for _ in range(MAX_BODY_BYTES // len(piece) + 2):
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
        except OSError:
            pass  # closed while it was sending
        rest = read_to_end(reader)
        assert rest == b"" or rest.startswith(b"HTTP/1.1 400 "), rest[:100]
    assert call_ok(service)
    assert service.client().events() == []


def call_ok(service: RunningService) -> bool:
    sock, reader = connect(service)
    with sock, reader:
        sock.sendall(request("GET", PREFIX + "/health", None))
        return read_answer(reader)[0] == 200


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


# -- the connection cap and the request-head timeout (issue 26, item 6) ---------------------------


def test_connection_cap_stays_below_the_descriptor_limit() -> None:
    assert connection_cap(1000, 1024, 1 << 20) == (1000, 1256)  # the soft limit is raised as far as needed
    assert connection_cap(1000, 512, 512) == (256, 512)  # capped: accept never meets EMFILE
    assert connection_cap(50, 4096, 4096) == (50, 4096)


def closed_by_the_service(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def capped(tmp_path: Path) -> Any:
    service = RunningService(tmp_path / "capped", ["--max-connections", "8", "--idle-timeout", "1"]).start()
    try:
        yield service
    finally:
        service.stop()


def test_connections_past_the_cap_are_closed_and_half_sent_heads_time_out(capped: RunningService) -> None:
    parsed = urllib.parse.urlsplit(capped.info.url)
    address = (parsed.hostname, parsed.port)
    held = [socket.create_connection(address, timeout=30) for _ in range(8)]
    refused = [socket.create_connection(address, timeout=30) for _ in range(20)]
    try:
        for sock in held:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        # Past the cap: each is closed as soon as it is accepted.
        assert all(closed_by_the_service(sock) for sock in refused)
        # The half-sent heads are dropped after the idle timeout (recv waits for it, up to 30 s).
        assert all(closed_by_the_service(sock) for sock in held)
    finally:
        for sock in held + refused:
            sock.close()
    # A normal request is served again.
    assert wait(lambda: call_ok(capped), 30, "a request served after the cap")
    capped.stop()
    logged = (capped.home / "logs" / "server.log").read_text()
    refusals = [line for line in logged.splitlines() if "refused" in line and "--max-connections" in line]
    assert 1 <= len(refusals) <= 2, refusals  # once per interval, not once per connection
    assert "Traceback" not in logged
