"""Finding, starting and restarting the fork servers of a home.

A server is named by what it forks: its kind (``kernel`` or ``runner``),
the kernel spec, the interpreter and the preload list; its socket lives in
``<home>/fork/`` (owner-only) so it is never shared across homes.  Whoever
needs one and finds none starts it (in the background: that first child
starts the usual way), and starts it again once it has died.  A server
whose preload failed is not started again for :data:`RETRY_AFTER` seconds:
its marker file says which module and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiflow_nb.executors.forking import channel
from aiflow_nb.executors.forking.channel import failed_marker, starting_marker
from aiflow_nb.home import make_private_folder, open_private

log = logging.getLogger("aiflow_nb.executors.forking")

#: Seconds after a failed start before a server is tried again.
RETRY_AFTER = 60.0

#: Seconds a fork request may take to be answered.
FORK_TIMEOUT = 10.0


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o077


@dataclass
class ServerHandle:
    """One fork server of a home, as its users see it."""

    home: Path
    kind: str
    name: str = ""
    preload: tuple[str, ...] = ()
    python: str = sys.executable
    #: The server ends when this process has (None: after ``idle`` seconds without a request).
    owner: int | None = None
    idle: float = 600.0
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _warned: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        text = json.dumps([self.kind, self.name, os.path.normpath(self.python), list(self.preload)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        return self.home / "fork" / f"{self.kind}-{self.key}.sock"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / f"fork-{self.kind}-{self.key}.log"

    def failure(self) -> str | None:
        """Why the server's last start failed, if it failed less than RETRY_AFTER seconds ago."""
        marker = failed_marker(self.path)
        try:
            if time.time() - marker.stat().st_mtime < RETRY_AFTER:
                return marker.read_text().strip()
        except OSError:
            pass
        return None

    def fork(self, message: dict[str, Any], fds: list[int] | None = None) -> int | None:
        """Fork a child of this server; its pid, or None (no server yet: one is started for next time)."""
        request = {**message, "op": "fork", "kind": self.kind, "umask": _umask()}
        try:
            answer = channel.request(self.path, request, FORK_TIMEOUT, fds)
        except channel.ChannelError as exc:
            log.debug("no fork from %s: %s", self.path, exc)
            self.ensure()
            return None
        if "pid" not in answer:
            log.warning("the %s fork server refused a fork: %s", self.kind, answer.get("error"))
            return None
        return int(answer["pid"])

    def status(self, timeout: float = 5.0) -> dict[str, Any] | None:
        try:
            return channel.request(self.path, {"op": "status"}, timeout)
        except channel.ChannelError:
            return None

    def ensure(self) -> None:
        """Start the server unless it runs, is starting, or failed to start lately (which is logged once)."""
        if self.popen is not None and self.popen.poll() is None:
            return
        why = self.failure()
        if why is not None:
            if why != self._warned:
                self._warned = why
                log.warning("the %s fork server was not started (%s): kernels start the usual way", self.kind, why)
            return
        if self.path.exists() and self.status(timeout=1.0) is not None:
            return
        if not self._claim_start():
            return
        if self.popen is not None:
            log.warning("the %s fork server (pid %s) died; starting it again", self.kind, self.popen.pid)
            self.popen = None
        self.popen = self._start()

    def stop(self) -> None:
        """End the server if this handle started it (its children live on); another's is left alone."""
        popen, self.popen = self.popen, None
        if popen is None:
            return
        if popen.poll() is None:
            status = self.status(1.0)
            try:
                if status is None or status.get("pid") != popen.pid:
                    raise channel.ChannelError("not ours")
                channel.request(self.path, {"op": "stop"}, 5.0)
            except channel.ChannelError:
                popen.terminate()
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()

    def _claim_start(self) -> bool:
        """Become the one that starts the server (False: another process is starting it)."""
        marker = starting_marker(self.path)
        make_private_folder(self.path.parent)
        for _ in range(2):
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                try:
                    stale = time.time() - marker.stat().st_mtime > 2 * FORK_TIMEOUT
                except OSError:
                    continue
                if not stale:
                    return False
                marker.unlink(missing_ok=True)
                continue
            os.close(fd)
            return True
        return False

    def _start(self) -> subprocess.Popen[bytes]:
        make_private_folder(self.log_path.parent)
        command = [
            self.python,
            "-m",
            "aiflow_nb.executors.forking.server",
            "--socket",
            str(self.path),
            "--kind",
            self.kind,
            "--idle",
            str(self.idle),
        ]
        if self.preload:
            command += ["--preload", ",".join(self.preload)]
        if self.owner is not None:
            command += ["--owner", str(self.owner)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # the server's own log only: a child takes its request's
        log.info("starting the %s fork server %s", self.kind, self.path.name)
        with os.fdopen(open_private(self.log_path), "ab") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.path.parent,
                env=env,
                start_new_session=True,
            )
