"""Process identity (pid + kernel start time): how runs are found again after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb.executors import process


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that lives until the test ends."""
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_start_time_of_a_live_process_is_stable(sleeper: subprocess.Popen[bytes]) -> None:
    first = process.start_time(sleeper.pid)
    assert first is not None and first.isdigit()
    assert process.start_time(sleeper.pid) == first
    assert process.start_time(os.getpid()) is not None


def test_start_time_is_none_for_a_process_that_does_not_exist() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    # Reaped: the pid is free (and almost certainly not reused this fast).
    assert process.start_time(child.pid) is None
    assert not process.alive(child.pid, None)


def test_an_ended_but_unreaped_process_counts_as_ended() -> None:
    child = subprocess.Popen(["sleep", "60"])
    started = process.start_time(child.pid)
    assert process.alive(child.pid, started)
    os.kill(child.pid, signal.SIGKILL)
    try:
        # Not waited for yet: it is a zombie, which must not look alive.
        wait_until(lambda: not process.alive(child.pid, started))
        assert process.start_time(child.pid) is None
    finally:
        child.wait()


def test_alive_guards_against_pid_reuse(sleeper: subprocess.Popen[bytes]) -> None:
    started = process.start_time(sleeper.pid)
    assert started is not None
    assert process.alive(sleeper.pid, started)
    assert process.alive(sleeper.pid, None)  # no start time recorded: the pid alone decides
    # Same pid, another start time: a different process that reuses the pid.
    assert not process.alive(sleeper.pid, str(int(started) + 1))


def test_start_time_reads_process_names_with_spaces_and_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(60)"])
    try:
        # The kernel takes the command name from the file name (spaces and all).
        wait_until(lambda: Path(f"/proc/{child.pid}/comm").read_text().strip() == "a) b (c")
        started = process.start_time(child.pid)
        assert started is not None and started.isdigit()
        assert process.alive(child.pid, started)
    finally:
        child.kill()
        child.wait()
    assert not process.alive(child.pid, started)


def test_identity_round_trips_through_parse_identity() -> None:
    text = process.identity()
    parsed = process.parse_identity(text)
    assert parsed == (os.getpid(), process.start_time(os.getpid()))
    assert process.alive(*parsed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123 456", (123, "456")),
        ("123", (123, None)),
        ("123 456\n", (123, "456")),
        ("", None),
        ("  ", None),
        ("abc 456", None),
        ("-5 456", None),
    ],
    ids=["pid-and-start", "pid-only", "trailing-newline", "empty", "blank", "not-a-pid", "negative"],
)
def test_parse_identity(text: str, expected: tuple[int, str | None] | None) -> None:
    assert process.parse_identity(text) == expected
