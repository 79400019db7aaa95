"""The client's HTTP/1.1 connection: against the service, and loopback servers answering in each way HTTP allows."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from aiflow_nb import Event, errors
from aiflow_nb.client import Client
from aiflow_nb.transport import Connection, ProtocolError
from tests.conftest import RunningService

#: What a scripted server does with one accepted connection.
Script = Callable[[socket.socket], None]


class ScriptedServer:
    """A loopback server that runs one script per accepted connection, in order."""

    def __init__(self, scripts: list[Script]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.scripts = scripts
        self.accepted = 0
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for script in self.scripts:
                conn, _ = self.listener.accept()
                self.accepted += 1
                with conn:
                    script(conn)
        except BaseException as exc:  # shown by close(): a failing script must fail its test
            self.failure = exc

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*scripts: Script) -> ScriptedServer:
        servers.append(ScriptedServer(list(scripts)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def read_request(conn: socket.socket) -> bytes:
    """One whole request (head and body, by Content-Length or chunked) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        while not body.endswith(b"0\r\n\r\n"):
            body += conn.recv(65536)
    else:
        lengths = [int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        length = lengths[0] if lengths else 0
        while len(body) < length:
            body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def answer(*responses: bytes, close: bool = True) -> Script:
    """Read a request and write the next of ``responses``, for each of them."""

    def script(conn: socket.socket) -> None:
        for response in responses:
            read_request(conn)
            conn.sendall(response)
        if not close:
            conn.recv(1)  # until the client hangs up

    return script


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'


def test_requests_share_one_connection_while_the_answers_keep_it(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(answer(OK, OK, OK, close=False))
    conn = Connection("127.0.0.1", server.port, timeout=10)
    bodies = [conn.request("POST", "/x", {"A": "b"}, b"{}").body for _ in range(3)]
    conn.close()
    assert bodies == [b'{"a": true}'] * 3
    assert server.accepted == 1


def test_a_chunked_answer_after_an_interim_one(scripted: Callable[..., ScriptedServer]) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\n"
        b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: yes\r\n\r\n"
    )
    server = scripted(answer(chunked, OK, close=False))
    conn = Connection("127.0.0.1", server.port, timeout=10)
    first = conn.request("GET", "/x", {}, None)
    assert (first.status, first.reason, first.body) == (201, "Created", b"hello, world")
    assert first.headers["x-twice"] == "1, 2"
    assert conn.request("GET", "/x", {}, None).body == b'{"a": true}'  # the chunked body was read to its end
    conn.close()
    assert server.accepted == 1


def test_an_answer_without_length_ends_with_its_connection(scripted: Callable[..., ScriptedServer]) -> None:
    until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    hung_up: list[bytes] = []

    def closing(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: TE, Close\r\nContent-Length: 2\r\n\r\nok")
        conn.settimeout(10)
        hung_up.append(conn.recv(1))  # b"" once the client closed its end, as the answer asked

    server = scripted(answer(until_close), closing)
    conn = Connection("127.0.0.1", server.port, timeout=10)
    assert conn.request("GET", "/x", {}, None).body == b"all of it"
    assert conn.request("GET", "/x", {}, bytearray(b"{}")).body == b"ok"  # on a new connection
    server.close()
    assert server.accepted == 2 and hung_up == [b""]


def test_streamed_body_is_sent_chunked(scripted: Callable[..., ScriptedServer]) -> None:
    seen: list[bytes] = []

    def script(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        conn.sendall(OK)

    server = scripted(script)
    conn = Connection("127.0.0.1", server.port, timeout=10)
    assert conn.request("POST", "/x", {}, iter([b"ab", b"", b"cde"])).status == 200
    conn.close()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"", ConnectionResetError),  # closed without a word: a connection failure, retried by the client
        (b"SSH-2.0-OpenSSH_9.2\r\n", ProtocolError),
        # Cut off midway (a service killed while answering): a lost connection, retried by the client.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionResetError),
        (b"HTTP/1.1 200 OK\r\nContent-Le", ConnectionResetError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", ConnectionResetError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
        (b"HTTP/1.1 2xx OK\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ProtocolError),
    ],
)
def test_broken_answers_raise(scripted: Callable[..., ScriptedServer], response: bytes, error: type[Exception]) -> None:
    server = scripted(answer(response))
    conn = Connection("127.0.0.1", server.port, timeout=10)
    with pytest.raises(error):
        conn.request("GET", "/x", {}, None)
    conn.close()


def test_the_client_retries_an_answer_cut_off_midway(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(answer(OK[:-4]), answer(OK))
    with Client(f"http://127.0.0.1:{server.port}", "token") as client:
        assert client.request("GET", "/health", retry=True) == {"a": True}
    assert server.accepted == 2


def test_the_client_names_a_server_that_is_not_the_service(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(answer(b"SSH-2.0-OpenSSH_9.2\r\n"))
    url = f"http://127.0.0.1:{server.port}"
    with Client(url, "token") as client, pytest.raises(errors.ServiceUnavailableError) as caught:
        client.workflows()
    assert str(caught.value).startswith(f"{url} does not answer as the aiflow-nb service does (not an HTTP/1.1 status")


def test_an_answer_before_the_end_of_the_body_is_read(service: RunningService) -> None:
    # The service refuses a wrong token once it has the head, and closes: the client, still sending
    # a large batch, reports that refusal (not a broken pipe, nor retries until its deadline).
    events = [Event("row", {"i": i, "pad": "x" * 200}) for i in range(30_000)]
    client = Client(service.info.url, "wrong-token", retry_for=0)
    with client, pytest.raises(errors.UnauthorizedError) as caught:
        client.send_events(events)
    assert "token" in str(caught.value)
    with Client(service.info.url, service.info.token) as client:
        assert client.events(key="row") == []
