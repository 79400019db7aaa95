"""Running ``aiflow-nb`` as a user does: a new process, its exit code and its two streams checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def cli(home: Path | str, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
    """Run ``aiflow-nb --home HOME ARGS``; check it exits ``code`` (None: any) and prints no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if code is not None:
        assert done.returncode == code, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    return done


def cli_json(home: Path | str, *args: str) -> Any:
    """What ``aiflow-nb ... -o json`` prints, decoded."""
    return json.loads(cli(home, *args, "-o", "json").stdout)


def mistake(home: Path | str, *args: str, code: int = 1) -> str:
    """A command that must fail as a user's mistake: nothing on stdout, one ``aiflow-nb: ...`` line."""
    done = cli(home, *args, code=code)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("aiflow-nb: "), done.stderr
    return lines[-1]
