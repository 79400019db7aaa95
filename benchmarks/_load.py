"""A small HTTP/1.1 load generator: many keep-alive connections on one asyncio loop.

A thread per client (what ``bench_http.py`` also measures, with the real
``Client``) spends most of its time in the client's own Python; this sends
each request as one prepared write and reads the answer by Content-Length,
about 0.1 ms of CPU a request, so the figure is the service's.  It also
serves the reference: a bare tornado handler on this machine, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class LoadResult:
    requests: int
    wall: float
    latencies: list[float]
    client_cpu: float
    #: CPU seconds the server process used meanwhile (where this module started it: the bare handler).
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.wall


def _request(host: str, path: str, token: str, body: dict[str, Any], key: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: token {token}\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key is not None else "")
        + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _connection(host: str, port: int, requests: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(f"{head.splitlines()[0].decode()}: {body[:200]!r}")
    finally:
        writer.close()


async def _run(host: str, port: int, batches: list[list[bytes]]) -> LoadResult:
    latencies: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(_connection(host, port, batch, latencies) for batch in batches))
    return LoadResult(sum(map(len, batches)), time.perf_counter() - start, latencies, time.process_time() - cpu)


def post_events(url: str, token: str, connections: int, per_connection: int, keyed: bool = True) -> LoadResult:
    """``connections`` clients each POST ``per_connection`` single events, one after another.

    ``keyed``: each request with an ``Idempotency-Key`` header, as ``Client.send_event`` sends it.
    """
    host, _, port = url.removeprefix("http://").partition(":")
    tag = time.time_ns()
    batches = [
        [
            _request(
                host,
                "/api/v1/events",
                token,
                {"key": "ingest", "value": {"i": i, "hour": "2026-11-27T10:00"}},
                f"load-{tag}-{c}-{i}" if keyed else None,
            )
            for i in range(per_connection)
        ]
        for c in range(connections)
    ]
    return asyncio.run(_run(host, int(port), batches))


# -- the reference: a bare tornado handler -------------------------------------------------------


def _bare_tornado(port: Any, ready: Any) -> None:
    import tornado.web

    class Echo(tornado.web.RequestHandler):
        def post(self) -> None:
            json.loads(self.request.body)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"offset": 1}))

    async def serve() -> None:
        server = tornado.web.Application([(r"/api/v1/events", Echo)]).listen(0, "127.0.0.1")
        port.value = next(iter(server._sockets.values())).getsockname()[1]
        ready.set()
        await asyncio.Event().wait()

    from aiflow_nb.server.main import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the service's event loop
        runner.run(serve())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_tornado(connections: int, per_connection: int) -> LoadResult:
    """The same load against a tornado handler that only parses the JSON and answers, on the service's loop."""
    ctx = multiprocessing.get_context("spawn")
    port, ready = ctx.Value("i", 0), ctx.Event()
    proc = ctx.Process(target=_bare_tornado, args=(port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the bare tornado server did not start")
        url, pid = f"http://127.0.0.1:{port.value}", proc.pid
        assert pid is not None
        post_events(url, "-", connections, 5)  # connect and warm up, as the service was
        before = _cpu_seconds(pid)
        result = post_events(url, "-", connections, per_connection)
        result.server_cpu = _cpu_seconds(pid) - before
        return result
    finally:
        proc.kill()
        proc.join()
