"""``aiflow-nb verify``: is the stored state of a home exactly what its log implies?

With the home's service running it asks the service (``GET /api/v1/verify``),
which owns the database; otherwise it opens the database read-only.  Exit
0 consistent, 1 differences found (each printed), 2 it could not verify
(not a home, a damaged file, a newer schema): one line, nothing written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from aiflow_nb.client import Client
from aiflow_nb.errors import AiflowError
from aiflow_nb.home import default_home
from aiflow_nb.scheduler.verify import Report, check_home
from aiflow_nb.server import control, info

__all__ = ["main", "verify_home"]


def verify_home(home: Path) -> Report:
    """The report of ``home``: from its running service, else from its database read-only."""
    server = info.read(home) if home.is_dir() else None
    if server is not None and control.healthy(server):
        with Client(server.url, server.token, home=home) as client:
            return Report.from_dict(client.request("GET", "/verify", retry=True))
    return check_home(home)


def main(home: Path | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the report of ``home`` (default: the default home); return the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        report = verify_home(home if home is not None else default_home())
    except AiflowError as exc:
        print(f"aiflow-nb verify: {exc}", file=err)
        return 2
    for line in report.lines():
        print(line, file=out)
    return 0 if report.consistent else 1
