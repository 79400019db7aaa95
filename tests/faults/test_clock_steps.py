"""Clock steps (issue 33): the wall clock steps back an hour, then forward an hour twice.

Live meanwhile: an interval schedule (catch-up on, so every due time must
tick), a cron schedule, a running task with a timeout and a heartbeat
timeout, and a failed task waiting its retry delay. Two ways to step:

- the service process (and the tasks it starts) under libfaketime, its
  offset read from a file the test replaces (``FAKETIME_TIMESTAMP_FILE``, no
  caching), monotonic time left alone as a real step leaves it. Debian 12's
  libfaketime 0.9.10 breaks every ``time.sleep`` of Python 3.11 in that mode
  (EINVAL: libfaketime issue 426), so ``make`` builds the fixed one from
  Debian 13's source (see the Makefile); ``make test`` names it in
  ``AIFLOW_NB_LIBFAKETIME``, and then a missing or broken one fails the test
  instead of skipping it;
- an engine whose wall clock the test steps (``SteadyClock(wall=...)``),
  with real processes and real elapsed time.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow
from aiflow_nb.clock import SteadyClock
from aiflow_nb.events import keys
from tests.conftest import RunningService

pytestmark = pytest.mark.timeout(240)

#: Where ``make`` builds libfaketime (under the venv) unless this variable names it.
LIBFAKETIME_ENV = "AIFLOW_NB_LIBFAKETIME"
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


def faketime_env(library: Path, offset: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(library),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def libfaketime() -> tuple[Path, bool]:
    """The library to preload, and whether it is required (named by ``make test``)."""
    named = os.environ.get(LIBFAKETIME_ENV)
    if named:
        return Path(named), True
    return Path(sys.prefix, "faketime", "libfaketimeMT.so.1"), False


def set_faketime(offset: Path, to: str) -> None:
    """Name the offset in one rename: libfaketime reads the file at every clock read and ends the process
    when it finds it empty, as a plain rewrite may leave it for a moment."""
    new = offset.with_name(offset.name + ".new")
    new.write_text(to + "\n")
    new.replace(offset)


@pytest.fixture(params=["kernel-pool", "local"])
def stepped_service(
    request: pytest.FixtureRequest, home: Path, tmp_path: Path
) -> Iterator[tuple[RunningService, Path]]:
    """The service (with the executor of the parameter) under libfaketime, and the file naming its offset."""
    library, required = libfaketime()
    give_up = pytest.fail if required else pytest.skip
    if not library.exists():
        give_up(f"libfaketime is not built ({library}; `make faketime` builds it)")
    offset = tmp_path / "faketime"
    set_faketime(offset, "+0")
    env = faketime_env(library, offset)
    probe = subprocess.run(
        [sys.executable, "-c", "import time; time.sleep(0.01)"], env=env, capture_output=True, check=False
    )
    if probe.returncode != 0:
        give_up(
            f"{library} fails Python's time.sleep when monotonic time is not faked "
            f"(libfaketime issue 426): {probe.stderr.decode().strip().splitlines()[-1]}"
        )
    service = RunningService(home, ["--executor", request.param, "--heartbeat-timeout", "5"], env).start()
    try:
        yield service, offset
    finally:
        service.stop()


def tick_events(api: Any, workflow: str) -> list[Any]:
    return [e for e in api.events(key=keys.SCHEDULE_TICK, limit=10_000) if e.value["workflow"] == workflow]


def ticks(api: Any, workflow: str) -> list[datetime]:
    return [datetime.fromisoformat(e.value["scheduled_time"]) for e in tick_events(api, workflow)]


def test_clock_steps_in_the_service_process(stepped_service: tuple[RunningService, Path], tmp_path: Path) -> None:
    service, offset = stepped_service
    run_through_steps(
        service.client(), lambda to: set_faketime(offset, to), polling_wait, tmp_path, log_clock_stepped=True
    )


def test_clock_steps_under_an_engine(home: Path, tmp_path: Path) -> None:
    shift = [timedelta(0)]
    hours = {"-1h": timedelta(hours=-1), "+0": timedelta(0), "+1h": timedelta(hours=1)}

    def stepped_wall() -> datetime:
        return datetime.now(UTC) + shift[0]

    def step(to: str) -> None:
        shift[0] = hours[to]

    with Engine(home, stop_grace=2.0, heartbeat_timeout=5, clock=SteadyClock(wall=stepped_wall)) as engine:

        def wait(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
            return engine.wait_for(predicate, timeout, what)

        run_through_steps(engine, step, wait, tmp_path)


def run_through_steps(
    client: Any, set_offset: Callable[[str], None], wait: Any, tmp_path: Path, *, log_clock_stepped: bool = False
) -> None:
    """No due time ticks twice or is lost, no run is timed out, a retry waits its delay in elapsed time.

    ``log_clock_stepped``: the event log's clock steps too (the whole service process is stepped).
    """
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

    def step(to: str, count: int = 2) -> datetime:
        """Step, wait for ``count`` interval ticks, and return the (real) time just after the step."""
        before = len(ticks(client, "beat"))
        set_offset(to)
        stepped_at = datetime.now(UTC)
        wait(lambda: len(ticks(client, "beat")) >= before + count, f"{count} interval ticks after the step to {to}")
        return stepped_at

    stepped_at = step("-1h", 3)  # back an hour: the retry is due in seconds, not in an hour and seconds
    if log_clock_stepped:
        # The last two ticks came after the step (the first after it may have come before). Their due
        # times are an interval apart, but the service's wall clock is now an hour behind the last
        # create_time it gave, so the log gives that time again rather than going back: a time from
        # before the step.
        a, b = tick_events(client, "beat")[-2:]
        assert a.create_time == b.create_time, "the service's wall clock did not step back"
        assert b.create_time is not None and b.create_time < stepped_at, "the service's wall clock did not step back"
    [te] = wait(
        lambda: [t for t in client.task_executions(flaky_ex) if t.status.finished],
        "the retry to run",
    )
    assert te.status is TaskStatus.SUCCESS and te.attempt == 2
    first, second = (float(x) for x in attempts.read_text().split())
    assert second - first >= RETRY_DELAY  # the delay in elapsed time

    step("+0")  # forward an hour
    step("+1h")  # and another: the cron schedule's missed minutes collapse into one tick
    now = datetime.now(UTC) + timedelta(hours=1)
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


def test_a_step_back_while_the_engine_is_down(home: Path, tmp_path: Path) -> None:
    """Restarted an hour earlier, an interval schedule ticks one interval on and a pending retry runs.

    Both were recorded in the wall time of the first engine; waiting for that
    time again would hold them for the length of the step.
    """
    attempts, marker = tmp_path / "attempts", tmp_path / "failed-once"
    with Workflow("beat") as beat:
        BashTask("b", command="true")
    beat.schedule(interval=timedelta(seconds=INTERVAL))
    with Workflow("flaky") as flaky:
        BashTask(
            "f",
            command=f"echo x >> {attempts}; test -e {marker} || {{ touch {marker}; exit 1; }}",
            max_retries=1,
            retry_delay=RETRY_DELAY,
        )
    with Engine(home, stop_grace=2.0) as engine:
        engine.submit(beat)
        engine.submit(flaky)
        flaky_ex = engine.start_execution("flaky")
        engine.wait_for(lambda: len(ticks(engine, "beat")) >= 2, 60, "two interval ticks")
        engine.wait_for(
            lambda: any(t.status is TaskStatus.RETRYING for t in engine.task_executions(flaky_ex)),
            60,
            "the flaky task to wait for its retry",
        )
        before = len(ticks(engine, "beat"))

    def an_hour_ago() -> datetime:
        return datetime.now(UTC) - timedelta(hours=1)

    with Engine(home, stop_grace=2.0, clock=SteadyClock(wall=an_hour_ago)) as engine:
        engine.wait_for(lambda: len(ticks(engine, "beat")) > before, 30, "an interval tick after the restart")
        [run] = engine.wait_for(
            lambda: [t for t in engine.task_executions(flaky_ex) if t.status.finished], 30, "the retry to run"
        )
        assert run.status is TaskStatus.SUCCESS and run.attempt == 2
        interval_ticks = ticks(engine, "beat")
        assert len(set(interval_ticks)) == len(interval_ticks), "an interval due time ticked twice"
