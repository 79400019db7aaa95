"""Run the service in the foreground: ``python -m aiflow_nb.server``."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import logging.handlers
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import tornado.netutil

from aiflow_nb._version import __version__
from aiflow_nb.engine import Engine, prepare_home
from aiflow_nb.errors import AiflowError, no_space
from aiflow_nb.executors import process
from aiflow_nb.home import OWNER_ONLY_UMASK, default_home
from aiflow_nb.scheduler import collector
from aiflow_nb.server import info, redact, room
from aiflow_nb.server.app import make_app
from aiflow_nb.server.connections import BODY_TIMEOUT, CappedHTTPServer, apply_descriptor_limit
from aiflow_nb.server.options import add_engine_arguments, executor_options
from aiflow_nb.server.service import Service

log = logging.getLogger("aiflow_nb.server")


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class LogFile(logging.handlers.RotatingFileHandler):
    """The service's log file; a record it has no room for is dropped and counted, without a traceback.

    Once the disk has room again, one line says how many were lost.
    """

    dropped = 0

    def handleError(self, record: logging.LogRecord) -> None:
        if no_space(sys.exc_info()[1] or Exception()) is not None:
            self.dropped += 1
            return
        super().handleError(record)

    def emit(self, record: logging.LogRecord) -> None:
        lost, self.dropped = self.dropped, 0
        if lost:
            note = logging.LogRecord(
                "aiflow_nb.server",
                logging.WARNING,
                __file__,
                0,
                "%d log records were lost: the disk was full",
                (lost,),
                None,
            )
            super().emit(note)
            if self.dropped:  # still no room: the note was lost too
                self.dropped = lost
        super().emit(record)


def configure_logging(home: Path, to_stderr: bool) -> None:
    folder = home / "logs"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = LogFile(folder / "server.log", maxBytes=10_000_000, backupCount=3)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(fmt)
    redact.install(handler)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        redact.install(stream)
        root.addHandler(stream)
    # One line per request is too much at thousands of events a second.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


async def serve(
    engine: Engine, home: Path, ip: str, port: int, max_connections: int = 1000, idle_timeout: float = 10.0
) -> None:
    token = secrets.token_urlsafe(32)
    task_token = info.task_token(home)
    redact.REDACTOR.add(token)
    redact.REDACTOR.add(task_token)
    service = Service(engine, token, task_token)
    service.attach(asyncio.get_running_loop())
    sockets = tornado.netutil.bind_sockets(port, ip)
    server = CappedHTTPServer(
        make_app(service),
        xheaders=False,
        max_connections=apply_descriptor_limit(max_connections),
        idle_connection_timeout=idle_timeout,  # tornado's timeout for a whole request head
        body_timeout=BODY_TIMEOUT,
    )
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    host = f"[{ip}]" if ":" in ip else ip
    url = f"http://{host}:{bound}"
    engine.executors.serve_at(url, task_token)  # before the loop starts: it (re)submits remote runs
    engine.start()
    # What start-up made (modules, the engine's caches) lives as long as the process: out of the
    # collector's sight, so a full collection no longer walks it amid a batch.
    collector.settle()
    info.write(home, info.ServerInfo(url, token, os.getpid(), __version__, process.start_time(os.getpid())))
    loop = asyncio.get_running_loop()
    log.info(
        "aiflow-nb %s serving %s on %s (pid %s, %s event loop)",
        __version__,
        home,
        url,
        os.getpid(),
        type(loop).__module__.split(".")[0],
    )
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping: no new requests; letting the scheduler commit")
    server.stop()
    service.stopping = True  # events sent on connections still open are no longer taken
    deadline = loop.time() + 10.0
    while (service.in_flight or service.group_commit.flushing or service.group_commit.pending) and (
        loop.time() < deadline
    ):
        await asyncio.sleep(0.01)
    await server.close_all_connections()
    await asyncio.get_running_loop().run_in_executor(None, engine.close)
    service.close()
    info.remove(home, os.getpid())
    log.info("stopped; running tasks are left running and will be re-attached")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed: it costs each request ~20 % less of the IOLoop's time."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiflow_nb.server", description="Run the aiflow-nb service.")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quiet", action="store_true", help="log only to <home>/logs/server.log")
    add_engine_arguments(parser)
    args = parser.parse_args(argv)
    home = (args.home or default_home()).expanduser().resolve()
    os.umask(OWNER_ONLY_UMASK)  # all it (and the tasks it starts) writes in the home is the user's alone
    problem = room.start_problem(home)
    if problem is not None:
        print(f"aiflow-nb: {problem}", file=sys.stderr)
        return 1
    try:
        prepare_home(home)  # 0700: it holds the token, the events and the outputs
        configure_logging(home, to_stderr=not args.quiet)
    except (AiflowError, OSError) as exc:
        why = exc if isinstance(exc, AiflowError) else f"cannot write its log in {home}: {exc.strerror or exc}"
        print(f"aiflow-nb: {why}", file=sys.stderr)
        return 1
    running = info.read(home)
    if running is not None and running.alive and running.pid != os.getpid():
        print(f"aiflow-nb: already running for {home} at {running.url} (pid {running.pid})", file=sys.stderr)
        return 1
    if not is_loopback(args.ip):
        if not args.allow_remote:
            print(
                f"aiflow-nb: --ip {args.ip} is not a loopback address: other machines could reach the service; "
                "add --allow-remote if that is what you want",
                file=sys.stderr,
            )
            return 1
        log.warning("binding to %s: the service is reachable from other machines (the token still guards it)", args.ip)
    try:
        options = executor_options(args)
    except ValueError as exc:
        print(f"aiflow-nb: {exc}", file=sys.stderr)
        return 1
    try:
        engine = Engine(
            home,
            executor=args.executor,
            executors=options,
            max_parallel=args.max_parallel,
            stop_grace=args.stop_grace,
            heartbeat_timeout=args.heartbeat_timeout,
        )
    except AiflowError as exc:
        print(f"aiflow-nb: {exc}", file=sys.stderr)
        return 1
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(engine, home, args.ip, args.port, args.max_connections, args.idle_timeout))
    except OSError as exc:
        engine.close()
        print(f"aiflow-nb: cannot listen on {args.ip}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
