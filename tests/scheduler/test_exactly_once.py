"""Exactly-once across a crash: SIGKILL the engine mid-stream, restart it, count.

The engine runs in a child process (tests/scheduler/crash_child.py) with a
workflow that a trigger starts once per ``tick`` event, whose task appends
the offset of its triggering event to a file.  The test kills the child at a
random point (seeded, so a failure can be replayed), restarts it on the same
home (it resends all 300 events with the same idempotency keys), and checks
that every event produced exactly one execution, one task execution and one
line in the file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import Engine
from tests.scheduler.crash_child import TOTAL, assert_each_offset_ran_once

CHILD = Path(__file__).with_name("crash_child.py")


class Child:
    """One run of crash_child.py, its output in files."""

    def __init__(self, tmp_path: Path, home: Path, out: Path, n: int) -> None:
        self.stdout = tmp_path / f"child{n}.out"
        self.stderr = tmp_path / f"child{n}.err"
        with open(self.stdout, "wb") as so, open(self.stderr, "wb") as se:
            self.popen = subprocess.Popen(
                [sys.executable, str(CHILD), str(home), str(out)], stdout=so, stderr=se, stdin=subprocess.DEVNULL
            )

    def sent(self) -> int:
        """How many events the child reports having sent."""
        lines = [line for line in self.stdout.read_text().split("\n") if line.startswith("sent ")]
        return int(lines[-1].split()[1]) if lines else 0

    def done(self) -> bool:
        return "done" in self.stdout.read_text().split()

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def describe(self) -> str:
        return f"exit code {self.popen.returncode}; stderr:\n{self.stderr.read_text()[-3000:]}"


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_until(predicate, child: Child, timeout: float, what: str) -> None:
    """Poll ``predicate`` (cheap file reads) until true; fail if the child ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if child.popen.poll() is not None:
            pytest.fail(f"the engine child ended before {what}: {child.describe()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def launched(home: Path) -> int:
    """The highest task execution id the engine has started launching (its run folder exists)."""
    try:
        return max((int(p.name) for p in (home / "runs").iterdir()), default=0)
    except FileNotFoundError:
        return 0


# How each crash point is chosen (from a seeded random number):
# - "lines": the file holds that many offsets (tasks have run);
# - "sent": the child has sent that many events (the kill lands while sending);
# - "launch": the run folder of that task execution appears, i.e. the engine is launching it and has not
#   yet committed that it did: the window where a restarted engine must not launch it again.
KILL_PLANS = [
    pytest.param("lines", 1, 11, id="kill-once-by-lines-seed11"),
    pytest.param("sent", 1, 22, id="kill-once-by-sent-events-seed22"),
    pytest.param("launch", 4, 33, id="kill-4-times-while-launching-seed33"),
]


@pytest.mark.timeout(170)
@pytest.mark.parametrize(("plan", "crashes", "seed"), KILL_PLANS)
def test_every_event_runs_its_task_exactly_once_across_sigkill(
    plan: str, crashes: int, seed: int, home: Path, tmp_path: Path, children: list[Child]
) -> None:
    rng = random.Random(seed)
    out = tmp_path / "offsets.txt"
    kill_points = sorted(rng.randint(20, 250) for _ in range(crashes))
    at_kill: list[tuple[int, int]] = []
    for point in kill_points:
        child = Child(tmp_path, home, out, len(children))
        children.append(child)
        if plan == "sent":
            wait_until(lambda c=child, p=point: c.sent() >= p, child, 60, f"{point} events sent")
        elif plan == "launch":
            # A later crash waits for some progress of its own.
            point = min(max(point, launched(home) + 5), TOTAL - 20)
            wait_until(lambda p=point: (home / "runs" / str(p)).exists(), child, 90, f"task execution {point} launched")
        else:
            point = min(max(point, line_count(out) + 5), TOTAL - 20)
            wait_until(lambda p=point: line_count(out) >= p, child, 90, f"{point} offsets in the file")
        child.kill()
        at_kill.append((child.sent(), line_count(out)))
        # The kill landed mid-stream: work was left to do.
        assert not child.done() and line_count(out) < TOTAL, at_kill

    final = Child(tmp_path, home, out, len(children))
    children.append(final)
    try:
        final.popen.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the restarted engine did not finish within 150 s ({line_count(out)} offsets written)")
    assert final.popen.returncode == 0 and final.done(), final.describe()

    with Engine(home) as engine:
        ticks = engine.events(key="tick")
        offsets = Counter(e.offset for e in ticks)
        assert len(ticks) == TOTAL, f"{len(ticks)} tick events in the log (kills at sent/lines {at_kill})"
        assert sorted(e.value["i"] for e in ticks) == list(range(TOTAL))

        assert_each_offset_ran_once(
            engine.executions(workflow="ticks"), engine.task_executions, offsets, out, f"kills at sent/lines {at_kill}"
        )
