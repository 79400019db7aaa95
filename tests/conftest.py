"""Shared fixtures: a temp home per test, an engine, and process cleanup."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import Engine
from aiflow_nb.executors import process


def kill_runs(home: Path) -> None:
    """Kill every task process a test's engine left behind, by pid."""
    for claim in home.glob("runs/*/*/claim"):
        parsed = process.parse_identity(claim.read_text())
        if parsed and process.alive(*parsed):
            try:
                os.killpg(parsed[0], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh aiflow-nb home; HOME points at a temp folder too (Jupyter writes there)."""
    home = tmp_path / "aiflow_home"
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("AIFLOW_NB_HOME", str(home))
    yield home
    kill_runs(home)


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    """An engine on the temp home; tests drive it with ``engine.wait_for``."""
    eng = Engine(home, stop_grace=2.0)
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def fail_on_logged_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Like tornado's ExpectLog: an unexpected ERROR from aiflow-nb fails the test."""
    caplog.set_level(logging.INFO, logger="aiflow_nb")
    yield
    errors = [
        r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("aiflow_nb")
    ]
    if errors:
        pytest.fail("unexpected errors logged: " + "; ".join(r.getMessage() for r in errors))
