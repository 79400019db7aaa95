"""The operator tests need the example operator package (``make setup`` installs it).

Operators' jobs run in sessions of their own (they outlive their runner), so the shared clean-up,
which kills runners' process groups, does not reach them: each test here also kills, by pid, the
job of every handle its home holds.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from aiflow_nb.executors import process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not any(ep.name == "ticker" for ep in entry_points(group="aiflow_nb.operators")):
        raise pytest.UsageError(
            "tests/operators needs the example operator: pip install -e tests/operators/example_pkg (make setup does)"
        )


def kill_jobs(home: Path) -> None:
    for path in home.glob("runs/*/*/handle.json"):
        try:
            handle = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = handle.get("pid")
        if isinstance(pid, int) and process.alive(pid, handle.get("started")):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(autouse=True)
def _kill_operator_jobs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    home = getattr(request.node, "funcargs", {}).get("home")
    if isinstance(home, Path):
        kill_jobs(home)
