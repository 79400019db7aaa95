"""Soak: a service under mixed load for a long time; throughput, p99, RSS and fds over time, then exactly-once.

    .venv/bin/python benchmarks/bench_soak.py --minutes 30      # the recorded run (docs/reliability.md)
    .venv/bin/python benchmarks/bench_soak.py --minutes 1 --interval 10

Not part of ``run_all.py`` unless ``--quick`` (then one minute).  A real
service (``python -m aiflow_nb.server``, default executor) on a temporary
home, and, for ``--minutes``:

- a paced producer sends ``--rate`` events a second, one request each with
  its own idempotency key; ``--triggers`` of them a second go to the event
  keys of 18 triggered workflows, whose bash task appends its event's offset
  to a file;
- two workflows with a streaming bash task (a loop that never ends) that is
  restarted every 20 s;
- ``--clients`` API clients (threads, a ``Client`` each) read executions,
  events, workflows and task executions, and now and then send an event,
  each at ``--client-rate`` requests a second;
- five WebSocket subscribers connect from a recent offset, read for 2 to 6 s,
  drop and connect again.

Every ``--interval`` seconds one line: events acknowledged a second, API
requests a second, p50/p99 of sends and of reads, the service's RSS, open
file descriptors and threads.  At the end the load stops, the triggered
executions finish, and the exactly-once check runs: every acknowledged
send once in the log at its offset, one execution with one successful run
per triggering event, each offset recorded once.  Exit status 1 if it fails.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _common import print_machine, print_table, record

from aiflow_nb import BashTask, EventCondition, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.client import Client
from aiflow_nb.executors import process
from aiflow_nb.server import control, info

TRIGGERED = 18
STREAMING = 2
SUBSCRIBERS = 5
RESTART_EVERY = 20.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


def record_offset(out: Path) -> str:
    return (
        r"[[ $AIFLOW_NB_EVENT =~ \"offset\":\ ?([0-9]+) ]] || exit 3; "
        f'echo "${{BASH_REMATCH[1]}}" >> {shlex.quote(str(out))}'
    )


def workflows(folder: Path) -> list[Workflow]:
    made = []
    for k in range(TRIGGERED):
        with Workflow(f"soak-{k}") as wf:
            BashTask("record", command=record_offset(folder / "offsets.txt"))
        wf.trigger_on(EventCondition(f"soak.{k}"))
        made.append(wf)
    for k in range(STREAMING):
        with Workflow(f"stream-{k}") as wf:
            BashTask("follow", command="while true; do sleep 1; done", streaming=True)
        made.append(wf)
    return made


@dataclass
class Window:
    """What happened in one interval."""

    sends: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    requests: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, home: Path, folder: Path, args: argparse.Namespace) -> None:
        self.home, self.folder, self.args = home, folder, args
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.window = Window()
        self.acked: dict[str, int] = {}  # idempotency key -> acknowledged offset
        self.triggering: dict[str, int] = {}  # idempotency keys of the events that trigger a workflow
        self.threads: list[threading.Thread] = []
        self.latest = 0

    def take_window(self) -> Window:
        with self.lock:
            window, self.window = self.window, Window()
        return window

    def _note(self, kind: str, seconds: float) -> None:
        with self.lock:
            getattr(self.window, kind).append(seconds)
            self.window.requests += 1

    def _error(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.window.errors.append(f"{what}: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        self.threads.append(threading.Thread(target=self._produce, name="producer", daemon=True))
        self.threads.append(threading.Thread(target=self._restart_streams, name="restarter", daemon=True))
        for n in range(self.args.clients):
            self.threads.append(threading.Thread(target=self._client, args=(n,), name=f"client-{n}", daemon=True))
        for n in range(SUBSCRIBERS):
            self.threads.append(threading.Thread(target=self._subscribe, args=(n,), name=f"ws-{n}", daemon=True))
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(90)
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"load threads did not stop: {alive}")

    def _send(self, client: Client, key: str, value: object, trigger: bool) -> None:
        idem = f"soak-{time.monotonic_ns()}-{random.getrandbits(32)}"
        started = time.perf_counter()
        offset = client.send_event(key, value, idempotency_key=idem)
        self._note("sends", time.perf_counter() - started)
        with self.lock:
            self.acked[idem] = offset
            self.window.events += 1
            self.latest = max(self.latest, offset)
            if trigger:
                self.triggering[idem] = offset

    def _produce(self) -> None:
        """``--rate`` events a second, ``--triggers`` of them to a triggered workflow; paced, not bursty."""
        rate, triggers = self.args.rate, self.args.triggers
        pool = [threading.Thread(target=self._producer_lane, args=(lane, rate / 4, triggers / 4)) for lane in range(4)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    def _producer_lane(self, lane: int, rate: float, triggers: float) -> None:
        client = Client(home=self.home, retry_for=60)
        period, every = 1.0 / rate, max(1, round(rate / triggers)) if triggers else 0
        due, n = time.monotonic(), 0
        try:
            while not self.halt.is_set():
                n += 1
                trigger = bool(every) and n % every == 0
                key = f"soak.{random.randrange(TRIGGERED)}" if trigger else "soak.data"
                try:
                    self._send(client, key, {"lane": lane, "n": n}, trigger)
                except Exception as exc:
                    self._error("send", exc)
                due += period
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -1.0:
                    due = time.monotonic()  # fell behind: do not burst to catch up
        finally:
            client.close()

    def _client(self, n: int) -> None:
        client = Client(home=self.home, retry_for=60)
        rng = random.Random(n)
        period = 1.0 / self.args.client_rate
        try:
            while not self.halt.wait(period * rng.uniform(0.5, 1.5)):
                choice = rng.random()
                started = time.perf_counter()
                try:
                    if choice < 0.05:
                        self._send(client, "soak.client", {"client": n}, False)
                        continue
                    if choice < 0.35:
                        client.executions(limit=20)
                    elif choice < 0.65:
                        client.events(since=max(0, self.latest - 100), limit=100)
                    elif choice < 0.80:
                        client.workflows()
                    else:
                        recent = client.executions(limit=5)
                        if recent:
                            client.task_executions(rng.choice(recent).id)
                    self._note("reads", time.perf_counter() - started)
                except Exception as exc:
                    self._error("read", exc)
        finally:
            client.close()

    def _subscribe(self, n: int) -> None:
        rng = random.Random(1000 + n)
        while not self.halt.is_set():
            client = Client(home=self.home, retry_for=60)
            stop = threading.Event()
            timer = threading.Timer(rng.uniform(2, 6), stop.set)
            timer.start()
            try:
                for _ in client.stream(since=max(0, self.latest - 50), stop=stop):
                    if self.halt.is_set():
                        stop.set()
            except Exception as exc:
                self._error("stream", exc)
            finally:
                timer.cancel()
                client.close()

    def _restart_streams(self) -> None:
        client = Client(home=self.home, retry_for=60)
        try:
            executions = [client.start_execution(f"stream-{k}") for k in range(STREAMING)]
            self.stream_executions = executions
            while not self.halt.wait(RESTART_EVERY):
                for ex in executions:
                    try:
                        client.restart_task(ex, "follow")
                    except Exception as exc:
                        self._error("restart", exc)
        finally:
            client.close()


def service_stats(pid: int) -> tuple[float, int, int]:
    """RSS in MiB, open file descriptors and threads of a process."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def start_service(home: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiflow_nb.server", "--home", str(home), "--port", "0", "--quiet"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server = info.read(home)
        if server is not None and server.pid == proc.pid and control.healthy(server):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError("the service did not start")


def stop_service(proc: subprocess.Popen[bytes], home: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Task processes are left running by design (re-attached by a next service): end them by pid.
    for claim in home.glob("runs/*/*/claim"):
        parsed = process.parse_identity(claim.read_text())
        if parsed and process.alive(*parsed):
            try:
                os.killpg(parsed[0], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def check_exactly_once(client: Client, soak: Soak, out: Path) -> list[str]:
    """What breaks exactly-once, if anything."""
    problems = []
    acked = soak.acked
    events = []
    since = 0
    while True:
        page = client.events(since=since, limit=10_000)
        if not page:
            break
        events.extend(page)
        since = page[-1].offset or since
    sent = {"soak.data", "soak.client", *(f"soak.{k}" for k in range(TRIGGERED))}
    offsets = Counter(e.offset for e in events if e.key in sent)
    if len(offsets) != len(acked) or set(offsets) != set(acked.values()):
        problems.append(f"{len(acked)} sends acknowledged, {len(offsets)} such events in the log")
    if len(set(acked.values())) != len(acked):
        problems.append("two sends acknowledged with one offset")
    wanted = Counter(soak.triggering.values())
    per_event: Counter[int] = Counter()
    bad_runs = 0
    for k in range(TRIGGERED):
        for ex in client.executions(workflow=f"soak-{k}"):
            assert ex.event is not None  # each is triggered by an event
            per_event[ex.event["offset"]] += 1
            if ex.status is not WorkflowStatus.SUCCESS:
                bad_runs += 1
                continue
            runs = client.task_executions(ex.id)
            if [(t.status, t.attempt) for t in runs] != [(TaskStatus.SUCCESS, 1)]:
                bad_runs += 1
    if per_event != wanted:
        problems.append(
            f"executions per triggering event differ: missing {sorted(wanted - per_event)[:5]}, "
            f"extra {sorted(per_event - wanted)[:5]}"
        )
    if bad_runs:
        problems.append(f"{bad_runs} triggered executions without exactly one successful run")
    written = Counter(int(x) for x in out.read_text().split()) if out.exists() else Counter()
    if written != wanted:
        problems.append(f"offsets recorded: twice {sorted(written - wanted)[:5]}, never {sorted(wanted - written)[:5]}")
    return problems


def growth_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) after the first third (warm-up), per hour."""
    tail = samples[len(samples) // 3 :]
    if len(tail) < 2:
        return 0.0
    xs, ys = [t for t, _ in tail], [v for _, v in tail]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per reported line (default 30)")
    parser.add_argument("--rate", type=float, default=50.0, help="events a second from the producer (default 50)")
    parser.add_argument("--triggers", type=float, default=2.0, help="of them, triggering a run, a second (default 2)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent API clients (default 50)")
    parser.add_argument("--client-rate", type=float, default=1.0, help="requests a second per client (default 1)")
    parser.add_argument("--quick", action="store_true", help="one minute, a line every 10 s")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.interval = 1.0, 10.0
    print(
        f"aiflow-nb soak: {args.minutes:g} min, {args.rate:g} events/s ({args.triggers:g}/s trigger a run), "
        f"{args.clients} API clients at {args.client_rate:g} req/s, {SUBSCRIBERS} WebSocket subscribers, "
        f"{TRIGGERED} triggered + {STREAMING} streaming workflows"
    )
    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="aiflow-soak-"))
    home, folder = tmp / "home", tmp / "work"
    folder.mkdir()
    proc = start_service(home)
    rows: list[list[str]] = []
    rss_samples: list[tuple[float, float]] = []
    fd_samples: list[tuple[float, float]] = []
    errors: list[str] = []
    try:
        with Client(home=home) as client:
            for wf in workflows(folder):
                client.submit(wf)
        soak = Soak(home, folder, args)
        soak.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        print(
            f"{'min':>5} {'events/s':>9} {'req/s':>7} {'send p50':>9} {'send p99':>9} {'read p50':>9} "
            f"{'read p99':>9} {'RSS MiB':>8} {'fds':>5} {'threads':>7} {'errors':>6}",
            flush=True,
        )
        next_line = started + args.interval
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_line, end) - time.monotonic()))
            window = soak.take_window()
            seconds = time.monotonic() - (next_line - args.interval)
            next_line += args.interval
            rss, fds, threads = service_stats(proc.pid)
            elapsed = time.monotonic() - started
            rss_samples.append((elapsed, rss))
            fd_samples.append((elapsed, fds))
            errors.extend(window.errors)
            row = [
                f"{elapsed / 60:5.1f}",
                f"{window.events / seconds:9.0f}",
                f"{window.requests / seconds:7.0f}",
                f"{percentile(window.sends, 50) * 1000:7.1f}ms",
                f"{percentile(window.sends, 99) * 1000:7.1f}ms",
                f"{percentile(window.reads, 50) * 1000:7.1f}ms",
                f"{percentile(window.reads, 99) * 1000:7.1f}ms",
                f"{rss:8.1f}",
                f"{fds:5d}",
                f"{threads:7d}",
                f"{len(window.errors):6d}",
            ]
            rows.append(row)
            print(" ".join(row), flush=True)
        soak.stop()
        with Client(home=home) as client:
            for ex in getattr(soak, "stream_executions", []):
                client.stop_execution(ex)
            deadline = time.monotonic() + 300
            while client.executions(status="RUNNING") and time.monotonic() < deadline:
                time.sleep(0.5)
            problems = check_exactly_once(client, soak, folder / "offsets.txt")
    finally:
        stop_service(proc, home)
    print()
    rss_growth, fd_growth = growth_per_hour(rss_samples), growth_per_hour(fd_samples)
    print_table(
        ["figure", "value"],
        [
            ["events acknowledged", f"{len(soak.acked):,}"],
            ["of them triggering a run", f"{len(soak.triggering):,}"],
            ["RSS first / last interval, MiB", f"{rss_samples[0][1]:.1f} / {rss_samples[-1][1]:.1f}"],
            ["RSS trend after warm-up, MiB per hour", f"{rss_growth:+.1f}"],
            ["fds first / last interval", f"{fd_samples[0][1]:.0f} / {fd_samples[-1][1]:.0f}"],
            ["fds trend after warm-up, per hour", f"{fd_growth:+.1f}"],
            ["request errors", str(len(errors))],
        ],
    )
    for line in errors[:10]:
        print(f"  error: {line}")
    record("soak: events acknowledged a second", len(soak.acked) / (args.minutes * 60), "events/s")
    record("soak: RSS trend after warm-up", rss_growth, "MiB/h")
    if args.keep:
        print(f"home kept: {home}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if problems or errors:
        print("\nFAIL: " + "; ".join(problems + [f"{len(errors)} request errors"] * bool(errors)))
        return 1
    print("\nPASS: every acknowledged send once in the log, one execution and one run per triggering event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
