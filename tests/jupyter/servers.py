"""A real ``jupyter server`` or ``jupyter lab`` on a free loopback port with a temp home, for tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: JupyterLab settings that keep the page quiet and stable for screenshots.
QUIET_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterProcess:
    """``python -m jupyter_server`` (or ``jupyterlab``) with aiflow-nb's server extension, killed by pid."""

    def __init__(self, root: Path, aiflow_home: Path, app: str = "jupyter_server", *extra: str) -> None:
        self.root = root
        self.aiflow_home = aiflow_home
        self.app = app
        self.extra = list(extra)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / f"{app}.log"

    def start(self, timeout: float = 90.0) -> JupyterProcess:
        user = self.root / "user"
        notebooks = self.root / "notebooks"
        notebooks.mkdir(parents=True, exist_ok=True)
        settings = user / ".jupyter" / "lab" / "user-settings"
        for name, values in QUIET_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "AIFLOW_NB"))}
        env.update(HOME=str(user), AIFLOW_NB_HOME=str(self.aiflow_home))
        args = [
            sys.executable,
            "-m",
            self.app,
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--no-browser",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={notebooks}",
            "--ServerApp.port_retries=0",
            *self.extra,
        ]
        if os.geteuid() == 0:
            args.append("--allow-root")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                answer = httpx.get(f"{self.url}/api/status", params={"token": self.token}, timeout=2, trust_env=False)
                if answer.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.app} did not answer within {timeout:g} s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
