"""Start, stop and ask about the service of a home from another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from aiflow_nb.errors import AiflowError
from aiflow_nb.executors import process
from aiflow_nb.home import make_private_folder, open_private
from aiflow_nb.server import info, room
from aiflow_nb.server.info import ServerInfo


def healthy(server: ServerInfo, timeout: float = 2.0) -> bool:
    """Whether the service answers its health check (which needs no token)."""
    try:
        # Loopback: a proxy from the environment must not be asked.
        response = httpx.get(server.url + "/api/v1/health", timeout=timeout, trust_env=False)
        return bool(response.status_code == 200 and response.json().get("status") == "ok")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def status(home: Path) -> ServerInfo | None:
    """The running service of ``home``, or None."""
    server = info.read(home)
    if server is None or not server.alive:
        return None
    return server


def start(
    home: Path, *, ip: str = "127.0.0.1", port: int = 0, timeout: float = 60.0, flags: Sequence[str] = ()
) -> tuple[ServerInfo, bool]:
    """Start a detached service unless one runs; return it and whether it is new.

    ``flags`` are more arguments of ``python -m aiflow_nb.server`` (engine settings).
    """
    home = home.expanduser().resolve()
    running = status(home)
    if running is not None:
        return running, False
    problem = room.start_problem(home)  # checked here too: the service could not even write why it stopped
    if problem is not None:
        raise problem
    make_private_folder(home / "logs")  # before the service (umask 077) runs: made here, by the caller
    out = os.fdopen(open_private(home / "logs" / "server.out"), "ab")  # handed to the child
    with out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiflow_nb.server",
                "--home",
                str(home),
                "--ip",
                ip,
                "--port",
                str(port),
                "--quiet",
                *flags,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            tail = (home / "logs" / "server.out").read_text(errors="replace").strip().splitlines()
            why = tail[-1] if tail else f"exit code {code}"
            raise AiflowError(f"the service did not start: {why}")
        server = info.read(home)
        if server is not None and server.pid == child.pid and healthy(server):
            # Reap it whenever it ends, so a long-lived caller (a kernel) keeps no zombie.
            threading.Thread(target=child.wait, name="aiflow-nb-service-reaper", daemon=True).start()
            return server, True
        time.sleep(0.05)
    child.kill()
    raise AiflowError(f"the service did not answer within {timeout:g} s (see {home / 'logs' / 'server.log'})")


def stop(home: Path, timeout: float = 30.0) -> ServerInfo | None:
    """Stop the service gracefully; return what was stopped (None: nothing ran)."""
    server = status(home)
    if server is None:
        stale = info.read(home)
        if stale is not None:
            info.remove(home, stale.pid)
        return None
    try:
        os.kill(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive(server.pid, server.started):
            return server
        time.sleep(0.05)
    raise AiflowError(f"the service (pid {server.pid}) did not stop within {timeout:g} s")
