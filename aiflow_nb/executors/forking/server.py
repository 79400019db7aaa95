"""The fork server: ``python -m aiflow_nb.executors.forking.server --socket PATH --kind KIND``.

It imports what every child of its kind imports (``kernel``: ipykernel and
IPython, and the ``--preload`` modules; ``runner``: the task runner and
papermill), then listens on the Unix socket ``PATH`` and, per request, forks
a child (:mod:`.child`) and answers with its pid.  It starts no thread and
opens no socket but its listener, so a child begins as a clean
single-threaded copy; the child closes the listener first.

It keeps one child forked ahead: a child that waits on a pipe of its own
for the next request (while it waits it pays what every child pays first,
:func:`.child.wait_for_request`), so a request is handed to it, and the
next one is forked once the requester has its answer.  A child serves one
request; one that died while waiting is replaced by a fork on the spot.

A preload that does not import: one line on stderr and in ``PATH.failed``
naming the module and why, exit code :data:`PRELOAD_FAILED`; its users start
kernels the usual way.  The server ends when ``--owner`` has, when it was
idle for ``--idle`` seconds, on a ``stop`` request, or when another server
took over its socket path.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, Listener, Pipe
from pathlib import Path
from typing import Any

from aiflow_nb.executors.forking import channel
from aiflow_nb.executors.forking.channel import failed_marker, starting_marker

#: Exit code of a server whose preload failed to import.
PRELOAD_FAILED = 3

#: What each kind of server imports before its first fork.
BASE_PRELOADS = {
    "kernel": ("ipykernel.kernelapp", "IPython", "ipykernel.ipkernel"),
    "runner": (
        "aiflow_nb.executors.runner",
        "aiflow_nb.operators.builtin",  # the built-in kinds, loaded through their entry points per run
        "aiflow_nb.executors.warm_kernel",
        "aiflow_nb.executors.forking.provisioner",
        "nbclient",
    ),
}

#: Imported too when they import (what a child would import as it starts), so each child need not.
WARM_UPS = {
    "kernel": (
        "ipykernel.debugger",
        "IPython.core.completerlib",
        "IPython.core.debugger",
        "IPython.core.oinspect",
        "IPython.utils.wildcard",
        "importlib.resources.readers",
        "importlib.readers",
        "IPython.core.logger",
        "IPython.extensions.storemagic",
        "psutil",
        "sqlite3",
        "tornado.platform.asyncio",
        "faulthandler",
        "cProfile",
        "pstats",
    ),
    # jupyter_client's kernel spec lookup imports IPython (for its kernels folder) and ipykernel's
    # spec, and its connection set-up psutil (for the machine's addresses).
    "runner": ("IPython.paths", "ipykernel.kernelspec", "psutil", "aiflow_nb.operators.builtin"),
}

#: Seconds a request may take to arrive whole once connected.
REQUEST_TIMEOUT = 5.0


class ForkServer:
    """The listening loop and the bookkeeping it answers ``status`` with."""

    def __init__(self, path: Path, kind: str, preloaded: list[str], owner: int | None, idle: float) -> None:
        self.path = path
        self.kind = kind
        self.preloaded = preloaded
        self.owner = owner
        self.idle = idle
        self.pid = os.getpid()
        self.forks = 0
        self.last_request = time.monotonic()
        self.base_path = list(sys.path)
        self.inode: int | None = None
        #: The child forked ahead (its pid, and this end of its pipe), waiting for a request.
        self.ahead: tuple[int, Connection] | None = None

    def serve(self) -> int:
        listener = Listener(channel.address(self.path), family="AF_UNIX")
        os.chmod(self.path, 0o600)
        self.inode = os.stat(self.path).st_ino
        starting_marker(self.path).unlink(missing_ok=True)
        failed_marker(self.path).unlink(missing_ok=True)
        signal.signal(signal.SIGALRM, self._tick)
        signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
        print(f"aiflow-nb fork server ({self.kind}) pid {self.pid} listening on {self.path}", flush=True)
        try:
            while True:
                self._fork_ahead()
                conn = listener.accept()
                try:
                    self._answer(conn)
                except (OSError, EOFError, ValueError) as exc:
                    print(f"aiflow-nb fork server: a request failed: {exc}", file=sys.stderr, flush=True)
                finally:
                    conn.close()
                self.last_request = time.monotonic()
        except SystemExit:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            if self._owns_socket():
                listener.close()  # unlinks the socket
            return 0

    def status(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "kind": self.kind,
            "preloaded": self.preloaded,
            "forks": self.forks,
            "ahead": None if self.ahead is None else self.ahead[0],
            "threads": threading.active_count(),
            "os_threads": len(os.listdir("/proc/self/task")),
            "rss_kb": _rss_kb(),
        }

    def _answer(self, conn: Connection) -> None:
        message = channel.receive(conn, REQUEST_TIMEOUT)
        op = message.get("op")
        if op == "status":
            channel.send(conn, self.status())
        elif op == "stop":
            channel.send(conn, {"stopping": True})
            raise SystemExit(0)
        elif op == "fork":
            fds = channel.receive_fds(conn, int(message["fds"])) if message.get("fds") else []
            try:
                pid = self._fork(message, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            channel.send(conn, {"pid": pid})
        else:
            channel.send(conn, {"error": f"unknown op {op!r}"})

    def _fork(self, message: dict[str, Any], fds: list[int]) -> int:
        from aiflow_nb.executors.forking import child

        if message.get("kind") != self.kind:
            raise ValueError(f"a {self.kind} server cannot fork a {message.get('kind')!r}")
        pid = self._hand_off(message, fds)
        if pid is None:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child.become(message, fds, self.base_path)  # never returns
        self.forks += 1
        return pid

    def _fork_ahead(self) -> None:
        """Fork the child that waits for the next request, unless one waits already."""
        from aiflow_nb.executors.forking import child

        if self.ahead is not None:
            return
        ours, theirs = Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            child.wait_for_request(theirs, self.base_path)  # never returns
        theirs.close()
        self.ahead = (pid, ours)

    def _hand_off(self, message: dict[str, Any], fds: list[int]) -> int | None:
        """Give the request to the child forked ahead; its pid, or None if there is none (or it died)."""
        if self.ahead is None:
            return None
        (pid, conn), self.ahead = self.ahead, None
        try:
            channel.send(conn, {**message, "fds": len(fds)})
            if fds:
                channel.send_fds(conn, fds)
        except OSError as exc:
            print(f"aiflow-nb fork server: the child forked ahead is gone ({exc}): forking one", file=sys.stderr)
            return None
        finally:
            conn.close()
        return pid

    def _owns_socket(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def _tick(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:
            return  # a child before it reset its signals
        if self.owner is not None and not _alive(self.owner):
            raise SystemExit(0)
        if time.monotonic() - self.last_request > self.idle:
            raise SystemExit(0)
        if not self._owns_socket():
            raise SystemExit(0)  # another server took the path over


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _already_served(path: Path) -> bool:
    """True if a live server answers on ``path``; a stale socket file is removed."""
    if not path.exists():
        return False
    try:
        channel.request(path, {"op": "status"}, timeout=REQUEST_TIMEOUT)
    except channel.ChannelError:
        path.unlink(missing_ok=True)
        return False
    return True


def preload(modules: list[str]) -> str | None:
    """Import ``modules``; the reason of the first that does not import, naming it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a module may raise anything at import, SystemExit included
            return f"cannot preload module {name!r}: {type(exc).__name__}: {exc}"
    return None


def warm_up(kind: str) -> None:
    """Pay before the first fork what each child would pay on its own first use (no thread, no socket)."""
    if kind == "kernel":
        import sqlite3

        from IPython.core.inputtransformer2 import TransformerManager

        from aiflow_nb.executors.forking import child

        app_class = child.kernel_app_class()
        # What each kernel's start reads once: its command-line parser's patterns, and the sqlite
        # library its in-memory history opens (a throwaway app, no singleton, no socket, no thread).
        app_class().parse_command_line(["-f", os.devnull, "--HistoryManager.hist_file=:memory:"])
        sqlite3.connect(":memory:").close()
        # And the patterns IPython reads a cell with (a kernel's first execution compiles them otherwise).
        TransformerManager().transform_cell("pass\n")  # type: ignore[no-untyped-call]
        return
    from jupyter_client import localinterfaces

    from aiflow_nb.executors.forking import provisioner
    from aiflow_nb.executors.warm_kernel import warm_up_papermill

    warm_up_papermill()
    localinterfaces.localhost()  # reads the machine's addresses once
    provisioner.register()  # reads the provisioners' entry points once


def _clean_sys_path() -> list[str]:
    """sys.path without the folder the server was started in (a kernel adds its own)."""
    cwd = os.getcwd()
    return [p for p in sys.path if p and os.path.abspath(p) != cwd]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiflow_nb.executors.forking.server")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--kind", required=True, choices=sorted(BASE_PRELOADS))
    parser.add_argument("--preload", default="", help="comma-separated modules to import too")
    parser.add_argument("--owner", type=int, help="end when this process has")
    parser.add_argument("--idle", type=float, default=600.0, help="end after this many seconds without a request")
    args = parser.parse_args(argv)
    sys.path[:] = _clean_sys_path()
    os.umask(0o077)
    path: Path = args.socket
    if args.kind == "runner":
        from aiflow_nb.startup import skip_slow_optional_imports

        skip_slow_optional_imports()
    extra = [m.strip() for m in args.preload.split(",") if m.strip()]
    modules = [*BASE_PRELOADS[args.kind], *extra]
    why = preload(modules)
    for name in WARM_UPS[args.kind] if why is None else ():
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if why is None:
        warm_up(args.kind)
    if why is not None:
        print(f"aiflow-nb fork server: {why}", file=sys.stderr, flush=True)
        failed_marker(path).write_text(why + "\n")
        starting_marker(path).unlink(missing_ok=True)
        return PRELOAD_FAILED
    if threading.active_count() != 1:
        why = f"a preload started threads ({', '.join(t.name for t in threading.enumerate())}): cannot fork safely"
        print(f"aiflow-nb fork server: {why}", file=sys.stderr, flush=True)
        failed_marker(path).write_text(why + "\n")
        starting_marker(path).unlink(missing_ok=True)
        return PRELOAD_FAILED
    if _already_served(path):
        starting_marker(path).unlink(missing_ok=True)
        return 0
    # Children are reaped by the kernel (they are watched by pid, not waited for); each resets this.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.collect()
    gc.freeze()  # what was imported stays shared with the children: no copy when their collector walks it
    return ForkServer(path, args.kind, modules, args.owner, args.idle).serve()


if __name__ == "__main__":
    sys.exit(main())
