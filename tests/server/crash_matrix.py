"""The crash matrix: a loaded service that its own fault hook kills at seeded points.

Used by tests/server/test_crash_matrix.py (33 crashes in ``make test``) and
benchmarks/bench_crash_matrix.py (as many as asked).  The plan is drawn from
``aiflow_nb.faults.POINTS`` with a seeded RNG (every point once per round,
in a shuffled order, each at its 1st to 4th pass), so a failing seed replays.

The load, through ``aiflow_nb.client.Client`` as a user's scripts send it:

- producers send ``tick`` events, one request each (each with its own
  idempotency key, reused when the client retries across a restart); each
  triggers an execution of ``ticks``, whose bash task appends its event's
  offset to ``ticks.txt``;
- ``clock`` has a one-second interval schedule; its task appends the offset
  of its tick event to ``clock.txt``;
- a submitter submits ``versions`` again and again, version n with the
  command ``echo n``, retrying a submit whose answer was lost.

Each service is started with ``AIFLOW_NB_FAULTS=<point>:<pass>``; the harness
waits for it to die by SIGKILL (its own), then starts the next one.  The
checks, once a fault-free service has drained the work, are in
:meth:`Outcome.check`.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from aiflow_nb import BashTask, EventCondition, Workflow
from aiflow_nb.client import Client
from aiflow_nb.errors import ServiceUnavailableError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.faults import ENV, POINTS
from aiflow_nb.home import database_path
from aiflow_nb.scheduler.verify import check_home
from aiflow_nb.server import control, info
from tests.scheduler.crash_child import assert_each_offset_ran_once

#: Event sends in flight at once.
PRODUCERS = 4
#: Producers stay at most this many events ahead of the runs that record them.
BACKLOG = 16
SERVER = [sys.executable, "-m", "aiflow_nb.server"]
#: A crash point not reached within this many seconds fails the run.
REACH_TIMEOUT = 60.0


@dataclass(frozen=True)
class Crash:
    point: str
    hit: int

    def __str__(self) -> str:
        return f"{self.point}:{self.hit}"


def plan(seed: int, count: int) -> list[Crash]:
    """``count`` crashes: rounds of every point in a shuffled order, each at its 1st to 4th pass."""
    rng = random.Random(seed)
    points: list[str] = []
    while len(points) < count:
        round_ = list(POINTS)
        rng.shuffle(round_)
        points.extend(round_)
    return [Crash(point, rng.randint(1, 4)) for point in points[:count]]


def record_offset(out: Path) -> str:
    """A bash command appending the offset of the run's event (from $AIFLOW_NB_EVENT) to ``out``."""
    return (
        r"[[ $AIFLOW_NB_EVENT =~ \"offset\":\ ?([0-9]+) ]] || exit 3; "
        f'echo "${{BASH_REMATCH[1]}}" >> {shlex.quote(str(out))}'
    )


def workflows(folder: Path) -> list[Workflow]:
    with Workflow("ticks") as ticks:
        BashTask("record", command=record_offset(folder / "ticks.txt"))
    ticks.trigger_on(EventCondition("tick"))
    with Workflow("clock") as clock:
        BashTask("record", command=record_offset(folder / "clock.txt"))
    clock.schedule(interval=timedelta(seconds=1))
    return [ticks, clock]


def version_spec(n: int) -> dict[str, Any]:
    with Workflow("versions") as wf:
        BashTask("echo", command=f"echo {n}")
    return wf.to_spec()


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


class Service:
    """One service process on the home, maybe armed with a crash point; its stderr goes to ``err``."""

    def __init__(self, home: Path, crash: Crash | None, err: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != ENV}
        if crash is not None:
            env[ENV] = str(crash)
        self.home = home
        self.crash = crash
        self.err = err
        with open(err, "wb") as stderr:
            self.proc = subprocess.Popen(
                [*SERVER, "--home", str(home), "--port", "0", "--quiet", "--executor", "local", "--max-parallel", "8"],
                stdin=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once it answers; False if it died first (a crash point may be reached while starting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            server = info.read(self.home)
            if server is not None and server.pid == self.proc.pid and control.healthy(server):
                return True
            time.sleep(0.02)
        raise TimeoutError(f"the service (crash point {self.crash}) did not start in {timeout:g} s")

    def wait_crash(self, timeout: float) -> float:
        """Wait for it to kill itself at its crash point; the seconds it took."""
        started = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"crash point {self.crash} was not reached in {timeout:g} s") from None
        err = self.stderr()
        assert code == -signal.SIGKILL, f"the service armed with {self.crash} exited with {code}: {err}"
        assert self.crash is not None and f"SIGKILL at {self.crash.point} " in err, err
        return time.monotonic() - started

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Load:
    """The producers and the submitter; what each was told."""

    def __init__(self, home: Path, folder: Path) -> None:
        self.home = home
        self.out = folder / "ticks.txt"
        self.acked: dict[int, int] = {}  # tick number -> offset the service answered
        self.versions: dict[int, int] = {}  # submit n -> version the service answered
        self.errors: list[BaseException] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.client = Client(home=home, retry_for=REACH_TIMEOUT + 60)
        self.threads = [threading.Thread(target=self._produce, daemon=True) for _ in range(PRODUCERS)]
        self.threads.append(threading.Thread(target=self._submit, daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        deadline = time.monotonic() + REACH_TIMEOUT + 90
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.client.close()
        if any(thread.is_alive() for thread in self.threads):
            raise AssertionError("the load did not stop (a request hangs)")
        if self.errors:
            raise AssertionError("the load failed") from self.errors[0]

    def _produce(self) -> None:
        try:
            while not self.halt.is_set():
                with self.lock:
                    i, self.sent = self.sent, self.sent + 1
                while lines(self.out) < i - BACKLOG and not self.halt.is_set():
                    time.sleep(0.01)
                # Sent even after the halt: a number taken is a number sent (and acknowledged).
                self.acked[i] = self.client.send_event("tick", {"i": i})
        except BaseException as exc:
            self.errors.append(exc)
            self.halt.set()

    def _submit(self) -> None:
        n = 0
        try:
            while not self.halt.is_set():
                n += 1
                spec = version_spec(n)
                deadline = time.monotonic() + REACH_TIMEOUT + 60
                while True:  # a submit is not retried by the client: the same spec again is safe here
                    try:
                        self.versions[n] = self.client.submit(spec)
                        break
                    except ServiceUnavailableError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
                self.halt.wait(0.2)
        except BaseException as exc:
            self.errors.append(exc)
            self.halt.set()


@dataclass
class Outcome:
    seed: int
    crashes: list[Crash]
    home: Path
    folder: Path
    load: Load
    #: Seconds from a service being ready to its crash, and from a crash to the next service ready.
    to_crash: list[float] = field(default_factory=list)
    to_ready: list[float] = field(default_factory=list)
    died_starting: list[Crash] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"crash matrix seed {self.seed} ({', '.join(map(str, self.crashes))})"

    def check(self, client: Client) -> None:
        """Every acknowledged event once, every rule once per event, every run once, no half-written version."""
        load, label = self.load, self.label
        # Events: every send acknowledged, each once in the log, at the acknowledged offset.
        assert sorted(load.acked) == list(range(len(load.acked))), f"{label}: sends never acknowledged"
        ticks = client.events(key="tick", limit=10_000)
        per_tick = Counter(e.value["i"] for e in ticks)
        assert [i for i, n in per_tick.items() if n != 1] == [], f"{label}: doubled events"
        assert {e.value["i"]: e.offset for e in ticks} == load.acked, f"{label}: offsets differ from the answers"
        # The trigger rule fired once per event; each run happened once.
        assert_each_offset_ran_once(
            client.executions(workflow="ticks"), client.task_executions, Counter(load.acked.values()),
            self.folder / "ticks.txt", label,
        )  # fmt: skip
        # Schedule ticks: each due time once, each tick one execution with one run.
        clock_ticks = [
            e for e in client.events(key=event_keys.SCHEDULE_TICK, limit=10_000) if e.value["workflow"] == "clock"
        ]
        due = Counter(e.value["scheduled_time"] for e in clock_ticks)
        assert [t for t, n in due.items() if n != 1] == [], f"{label}: a due time ticked twice"
        assert clock_ticks, f"{label}: the schedule never ticked"
        assert_each_offset_ran_once(
            client.executions(workflow="clock"), client.task_executions,
            Counter(e.offset for e in clock_ticks), self.folder / "clock.txt", label,
        )  # fmt: skip
        # Versions: version n holds submit n, for every n acknowledged; none half-written or doubled.
        assert load.versions, f"{label}: no submit was acknowledged"
        assert load.versions == {n: n for n in load.versions}, f"{label}: submits and versions differ"

    def check_versions_stored(self) -> None:
        """With the service stopped: the versions table holds 1..V, version v = ``echo v``, the workflow at V."""
        conn = duckdb.connect(str(database_path(self.home)), read_only=True)
        try:
            rows = conn.execute(
                "SELECT version, spec FROM workflow_versions WHERE name = 'versions' ORDER BY version"
            ).fetchall()
            (current,) = conn.execute("SELECT version FROM workflows WHERE name = 'versions'").fetchone() or (None,)
        finally:
            conn.close()
        versions = [v for v, _ in rows]
        assert versions == list(range(1, len(rows) + 1)), f"{self.label}: stored versions {versions}"
        commands = [json.loads(spec)["tasks"][0]["command"] for _, spec in rows]
        assert commands == [f"echo {v}" for v in versions], f"{self.label}: a version holds another's spec"
        assert current == len(rows), f"{self.label}: the workflow points at {current}, the last version is {len(rows)}"
        assert max(self.load.versions) <= len(rows)


def run(home: Path, folder: Path, seed: int, count: int, services: list[Service], report: Any = None) -> Outcome:
    """Run the load across ``count`` seeded crashes, drain the work on a fault-free service, check.

    Every service started is appended to ``services`` (the caller stops them,
    also on failure).  ``report(n, crash, outcome)`` is called after each crash.
    """
    crashes = plan(seed, count)
    setup = Service(home, None, folder / "service-0.err")
    services.append(setup)
    assert setup.wait_ready(), setup.stderr()
    with Client(home=home) as client:
        for wf in workflows(folder):
            client.submit(wf)
    outcome = Outcome(seed, crashes, home, folder, Load(home, folder))
    setup.stop()
    load = outcome.load
    for n, crash in enumerate(crashes, 1):
        started = time.monotonic()
        service = Service(home, crash, folder / f"service-{n}.err")
        services.append(service)
        if service.wait_ready():
            outcome.to_ready.append(time.monotonic() - started)
        else:
            outcome.died_starting.append(crash)
        if n == 1:
            load.start()
        outcome.to_crash.append(service.wait_crash(REACH_TIMEOUT))
        verified = check_home(home)  # what the killed service left is what its log implies
        assert verified.consistent, f"{outcome.label}: after crash {n} ({crash}): " + "; ".join(verified.lines())
        if load.errors:
            raise AssertionError(f"{outcome.label}: the load failed at crash {n} ({crash})") from load.errors[0]
        if report is not None:
            report(n, crash, outcome)
    final = Service(home, None, folder / "service-final.err")
    services.append(final)
    assert final.wait_ready(), final.stderr()
    load.stop()
    with Client(home=home) as client:
        client.pause("clock")  # so the counts below hold still
        deadline = time.monotonic() + 120
        while True:
            running = client.executions(status="RUNNING")
            if not running and lines(folder / "ticks.txt") >= len(load.acked):
                break
            assert time.monotonic() < deadline, f"{outcome.label}: {len(running)} executions never ended"
            time.sleep(0.1)
        outcome.check(client)
    final.stop()
    outcome.check_versions_stored()
    return outcome
