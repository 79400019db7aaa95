"""Clock steps (issue 33): the wall clock steps back an hour, then forward an hour twice.

Live meanwhile: an interval schedule (catch-up on, so every due time must
tick), a cron schedule, a running task with a timeout and a heartbeat
timeout, and a failed task waiting its retry delay. Two ways to step:

- the service process under libfaketime (Debian's ``faketime``), its offset
  read from a file the test rewrites (``FAKETIME_TIMESTAMP_FILE``, no
  caching), monotonic time left alone as a real step leaves it. libfaketime
  0.9.10 (Debian 12) breaks every ``time.sleep`` of Python 3.11 in that mode
  (EINVAL: libfaketime issue 426); the test is skipped there, saying so;
- an engine whose wall clock the test steps (``SteadyClock(wall=...)``),
  with real processes and real elapsed time.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow
from aiflow_nb.clock import SteadyClock
from aiflow_nb.events import keys
from tests.conftest import RunningService

pytestmark = pytest.mark.timeout(240)

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
INTERVAL = 2
RETRY_DELAY = 4
Wait = Callable[[Callable[[], Any], str], Any]


def polling_wait(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def faketime_env(offset: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.fixture
def stepped_service(home: Path, tmp_path: Path) -> Iterator[tuple[RunningService, Path]]:
    if not LIBFAKETIME.exists():
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME}; apt-get install faketime)")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = faketime_env(offset)
    probe = subprocess.run(
        [sys.executable, "-c", "import time; time.sleep(0.01)"], env=env, capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(
            "this libfaketime fails Python's time.sleep when monotonic time is not faked "
            f"(libfaketime issue 426): {probe.stderr.decode().strip().splitlines()[-1]}"
        )
    service = RunningService(home, ["--executor", "local", "--heartbeat-timeout", "5"], env).start()
    try:
        yield service, offset
    finally:
        service.stop()


def ticks(api: Any, workflow: str) -> list[datetime]:
    return [
        datetime.fromisoformat(e.value["scheduled_time"])
        for e in api.events(key=keys.SCHEDULE_TICK, limit=10_000)
        if e.value["workflow"] == workflow
    ]


def test_clock_steps_in_the_service_process(stepped_service: tuple[RunningService, Path], tmp_path: Path) -> None:
    service, offset = stepped_service
    run_through_steps(service.client(), lambda to: offset.write_text(to + "\n"), polling_wait, tmp_path)


def test_clock_steps_under_an_engine(home: Path, tmp_path: Path) -> None:
    shift = [timedelta(0)]
    hours = {"-1h": timedelta(hours=-1), "+0": timedelta(0), "+1h": timedelta(hours=1)}

    def stepped_wall() -> datetime:
        return datetime.now(timezone.utc) + shift[0]

    def step(to: str) -> None:
        shift[0] = hours[to]

    with Engine(home, stop_grace=2.0, heartbeat_timeout=5, clock=SteadyClock(wall=stepped_wall)) as engine:

        def wait(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
            return engine.wait_for(predicate, timeout, what)

        run_through_steps(engine, step, wait, tmp_path)


def run_through_steps(client: Any, set_offset: Callable[[str], None], wait: Any, tmp_path: Path) -> None:
    """No due time ticks twice or is lost, no run is timed out, a retry waits its delay in elapsed time."""
    release, started, attempts, marker = (tmp_path / n for n in ("release", "started", "attempts", "failed-once"))
    with Workflow("beat") as beat:
        BashTask("b", command="true")
    beat.schedule(interval=timedelta(seconds=INTERVAL), catchup=True)
    with Workflow("minutely") as minutely:
        BashTask("m", command="true")
    minutely.schedule(cron="* * * * *")
    with Workflow("long") as long:
        BashTask(
            "l",
            command=f"touch {started}; while [ ! -e {release} ]; do sleep 0.2; done",
            timeout=60,
            heartbeat_timeout=5,
        )
    with Workflow("flaky") as flaky:
        BashTask(
            "f",
            command=f"cut -d' ' -f1 /proc/uptime >> {attempts}; test -e {marker} || {{ touch {marker}; exit 1; }}",
            max_retries=1,
            retry_delay=RETRY_DELAY,
        )
    for wf in (beat, minutely, long, flaky):
        client.submit(wf)
    long_ex = client.start_execution("long")
    flaky_ex = client.start_execution("flaky")
    wait(started.exists, "the long task to start")
    wait(lambda: attempts.exists() and marker.exists(), "the flaky task's first attempt")
    wait(lambda: len(ticks(client, "beat")) >= 2, "two interval ticks")

    def step(to: str) -> None:
        before = len(ticks(client, "beat"))
        set_offset(to)
        wait(lambda: len(ticks(client, "beat")) >= before + 2, f"two interval ticks after the step to {to}")

    step("-1h")  # back an hour: the retry is due in seconds, not in an hour and seconds
    [te] = wait(
        lambda: [t for t in client.task_executions(flaky_ex) if t.status.finished],
        "the retry to run",
    )
    assert te.status is TaskStatus.SUCCESS and te.attempt == 2
    first, second = (float(x) for x in attempts.read_text().split())
    assert second - first >= RETRY_DELAY  # the delay in elapsed time

    step("+0")  # forward an hour
    step("+1h")  # and another: the cron schedule's missed minutes collapse into one tick
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    wait(
        lambda: any(t >= now - timedelta(seconds=61) for t in ticks(client, "minutely")),
        "the cron schedule's tick after the step forward",
    )

    release.touch()
    [run] = wait(
        lambda: [t for t in client.task_executions(long_ex) if t.status.finished],
        "the long task to end",
    )
    # Neither its timeout (60 s) nor its heartbeat timeout (5 s) took the steps for elapsed time.
    assert run.status is TaskStatus.SUCCESS, run.error
    assert run.attempt == 1

    interval_ticks = ticks(client, "beat")
    assert interval_ticks == sorted(set(interval_ticks)), "an interval due time ticked twice"
    gaps = {b - a for a, b in itertools.pairwise(interval_ticks)}
    assert gaps == {timedelta(seconds=INTERVAL)}, f"interval due times missed: {sorted(gaps)}"
    cron_ticks = ticks(client, "minutely")
    assert cron_ticks == sorted(set(cron_ticks)), "a cron due time ticked twice"
    assert len(cron_ticks) <= 5, f"the missed hour was not collapsed into one tick: {len(cron_ticks)} ticks"

    events = client.events(limit=10_000)
    times = [e.create_time for e in events]
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(times)), (
        "event create_time went backwards"
    )
