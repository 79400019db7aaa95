"""server.json: how clients find the service of a home (url, token, pid)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from aiflow_nb.executors import process
from aiflow_nb.home import kept_secret

FILENAME = "server.json"
#: The token tasks on other machines send events with (see :func:`task_token`).
TASK_TOKEN = "task-token"


@dataclass
class ServerInfo:
    url: str
    token: str
    pid: int
    version: str
    started: str | None = None  # the process start time, against pid reuse

    @property
    def alive(self) -> bool:
        return process.alive(self.pid, self.started)


def write(home: Path, info: ServerInfo) -> Path:
    """Write it with mode 0600 (it holds the token), atomically."""
    path = home / FILENAME
    tmp = path.with_name(FILENAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read(home: Path) -> ServerInfo | None:
    try:
        data = json.loads((home / FILENAME).read_text())
        return ServerInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(home: Path, pid: int) -> None:
    """Remove it if it still describes process ``pid``."""
    info = read(home)
    if info is not None and info.pid == pid:
        (home / FILENAME).unlink(missing_ok=True)


def task_token(home: Path) -> str:
    """The home's task token, made on first use (mode 0600).

    It may only send events, and it outlives restarts of the service, so a
    task running on a Dask worker through one still reaches the next.
    Delete the file to change it (at the next start).
    """
    return kept_secret(home / TASK_TOKEN, lambda: secrets.token_urlsafe(32))
