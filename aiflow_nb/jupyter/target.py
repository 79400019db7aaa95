"""Which service the proxy talks to: the one in ``server.json`` of the home."""

from __future__ import annotations

import re
from pathlib import Path

from aiflow_nb.home import default_home
from aiflow_nb.server import control
from aiflow_nb.server.info import ServerInfo

#: A path the proxy may forward below /api/v1: plain segments, no "..", no empty segment.
_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")  # whole segments: fullmatch


def home() -> Path:
    """The home read at each request, so a service started later is found."""
    return default_home().expanduser()


def running() -> ServerInfo | None:
    return control.status(home())


def api_path_ok(path: str) -> bool:
    """True for a relative, already decoded path of plain segments, so the request stays under /api/v1."""
    segments = path.split("/")
    return all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments)
