"""`make demo` runs aiflow_nb.demo: it must work end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.home_modes import kinds, not_owner_only


def test_demo_runs_the_workflow_through_a_service(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.demo", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "started the aiflow-nb service" in out
    assert "sent event 'data_ready'" in out
    assert "execution 1: SUCCESS" in out
    assert "training on hour 2026-11-27T10:00 with lr=0.01" in out
    assert "stopped the service" in out
    assert not (home / "server.json").exists()
    # The service started as `make demo` starts it: its home is the user's alone (issue 26, item 1).
    assert {"server.log", "aiflow.duckdb", "log.txt", "output.ipynb"} <= kinds(home)
    assert not_owner_only(home) == []
