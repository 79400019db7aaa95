"""Benchmark: the service over HTTP -- ingest rates and event-to-task latencies.

    .venv/bin/python benchmarks/bench_http.py            # full run (~2 min)
    .venv/bin/python benchmarks/bench_http.py --quick    # smaller sizes
    .venv/bin/python benchmarks/bench_http.py --profile  # plus a py-spy profile of the service (if installed)
    .venv/bin/python benchmarks/bench_http.py --single-only --rounds 5   # the single-event target alone

A real service (``python -m aiflow_nb.server``) runs on a fresh home in a
temporary folder, stopped (SIGTERM) and removed at the end.  The home's log
holds ``--log-size`` events first (1,000,000 by default, none with
``--quick``), history no rule names.  Measured:

- single-event ``POST /api/v1/events``, one request per event, each with its
  own ``Idempotency-Key`` header (what ``Client.send_event`` does), answered once
  committed: 1 client, and 50 concurrent clients as threads of this process
  (each its own ``Client``), as 50 keep-alive connections of a small asyncio
  load generator (``_load.py``, about 0.1 ms of client CPU a request), and as
  5 processes x 10 threads; next to the load generator's figure, the same
  load against a bare tornado RequestHandler (parse the JSON, answer) on
  the event loop the service runs on, started by this script in the same
  run: the target is at least 0.8 times its rate.  These four run in three
  rounds, one of each per round, and each row is the median round (the
  slowest and fastest are shown).  The CPU column counts the server process
  (the service, or the bare handler's): on a loaded machine rates swing
  with the neighbours, CPU time per request far less;
- batches of 10,000 events: ``Client.send_events`` (NDJSON, streamed in
  chunks the service reads as they arrive; one ``Idempotency-Key`` for the
  request), the same with an ``idempotency_key`` per event, and the JSON form
  ``{"events": [...]}`` with no key at all;
- event-to-RUNNING: a ``go`` event triggers a workflow whose one bash task
  starts; latency from just before the POST to the ``create_time`` of the
  task's RUNNING status event (and from the ``go`` event's own ``create_time``,
  both clocks of this machine).  One event at a time, the service otherwise idle;
- event-to-SUCCESS of a one-cell notebook task, next to a plain
  ``papermill.execute_notebook`` of the same notebook (``shutdown_kernel="immediate"``)
  in this process and in a fresh interpreter, interleaved in the same run.

No workflow listens to the ingest events: the scheduler passes over them
unread, as it does with any event no rule names.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _load
import nbformat
from _common import fmt_rate, print_machine, print_table, record, verdict
from nbformat.v4 import new_code_cell, new_notebook

from aiflow_nb import BashTask, Event, EventLog, NotebookTask, Workflow
from aiflow_nb.client import Client
from aiflow_nb.events import keys
from aiflow_nb.home import database_path
from aiflow_nb.server import control
from aiflow_nb.server.info import ServerInfo

SINGLE_TARGET = 0.8  # single-event requests/s, durable, against a bare tornado handler's in the same run
BATCH_TARGET = 100_000  # events/s through the batch form
RUNNING_P50_TARGET = 20.0  # ms, event to task RUNNING

BATCH = 10_000


# -- helpers ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Profiler:
    """py-spy sampling of the service process while a phase runs (``--profile``)."""

    def __init__(self, enabled: bool, pid: int, folder: Path) -> None:
        self.pid = pid
        self.folder = folder
        self.spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.enabled = enabled and Path(self.spy).exists()
        if enabled and not self.enabled:
            print("(--profile needs py-spy: .venv/bin/pip install py-spy)\n")

    def run(self, title: str, fn: Any) -> Any:
        if not self.enabled:
            return fn()
        out = self.folder / f"profile-{len(list(self.folder.glob('profile-*')))}.txt"
        spy = subprocess.Popen(
            [self.spy, "record", "-p", str(self.pid), "-o", str(out), "-f", "raw", "-r", "200", "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let it attach
        try:
            return fn()
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            self.report(title, out)

    @staticmethod
    def report(title: str, path: Path, top: int = 15) -> None:
        if not path.exists():
            print(f"--- profile: {title}: no samples ---\n")
            return
        total, own, inclusive = 0, Counter[str](), Counter[str]()
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            frames = [f for f in stack.split(";") if "aiflow_nb" in f or "tornado" in f or "asyncio" in f]
            leaf = stack.split(";")[-1]
            own[leaf] += n
            for frame in set(frames):
                inclusive[frame] += n
        print(f"--- profile of the service: {title} ({total} samples of busy threads) ---")
        print("own time:")
        for frame, n in own.most_common(top):
            print(f"  {100 * n / total:5.1f}%  {frame}")
        print("inclusive (aiflow_nb / tornado / asyncio frames):")
        for frame, n in inclusive.most_common(top):
            print(f"  {100 * n / total:5.1f}%  {frame}")
        print()


# -- ingest ----------------------------------------------------------------------------------


def single_client(server: ServerInfo, n: int) -> tuple[float, list[float]]:
    """Requests/s of one client sending ``n`` events one by one; and each request's latency."""
    latencies = []
    with Client(server.url, server.token) as client:
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            client.send_event("ingest", {"i": i, "hour": "2026-11-27T10:00"})
            latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    return n / wall, latencies


def _client_thread(server: ServerInfo, n: int, barrier: threading.Barrier, out: list[float]) -> None:
    with Client(server.url, server.token) as client:
        client.health()  # connect before the clock starts
        barrier.wait()
        for i in range(n):
            t = time.perf_counter()
            client.send_event("ingest", {"i": i, "hour": "2026-11-27T10:00"})
            out.append(time.perf_counter() - t)


def threaded_clients(server: ServerInfo, clients: int, per_client: int) -> tuple[float, list[float], float]:
    """(requests/s, latencies, this process's CPU seconds per wall second) of ``clients`` threads."""
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=_client_thread, args=(server, per_client, barrier, latencies[c]))
        for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return clients * per_client / wall, [x for lat in latencies for x in lat], (time.process_time() - cpu) / wall


def _client_process(url: str, token: str, threads: int, per_client: int, start: Any, results: Any) -> None:
    """One process of the pool: ``threads`` clients, connected, then started with the others' at ``start``.

    Puts (its end on the wall clock, requests sent) on ``results``.
    """
    server = ServerInfo(url, token, 0, "")
    # Once its threads are connected, the process waits for every other (the barrier's action):
    # spawned interpreters are ready 0.7 - 1.6 s apart on two cores, and a late one used to
    # stretch the measured window.
    barrier = threading.Barrier(threads + 1, action=start.wait)
    out: list[list[float]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=_client_thread, args=(server, per_client, barrier, out[t])) for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    for worker in workers:
        worker.join()
    results.put((time.time(), sum(len(o) for o in out)))


def process_clients(server: ServerInfo, processes: int, threads: int, per_client: int) -> float:
    """Requests/s of ``processes`` x ``threads`` clients, all started at once."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(processes + 1), ctx.Queue()
    pool = [
        ctx.Process(target=_client_process, args=(server.url, server.token, threads, per_client, start, results))
        for _ in range(processes)
    ]
    for proc in pool:
        proc.start()
    try:
        start.wait(timeout=120)
        begin = time.time()
        done: list[tuple[float, int]] = [results.get(timeout=300) for _ in pool]
    finally:
        for proc in pool:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return sum(n for _, n in done) / (max(end for end, _ in done) - begin)


#: How the batches are keyed: the label of each, in the order measured.
BATCH_KINDS = {
    "client": "batch, Client.send_events (NDJSON, one Idempotency-Key)",
    "per-event": "batch, Client.send_events, an idempotency_key per event",
    "none": 'batch, JSON form {"events": [...]}, no keys',
}


def batches(server: ServerInfo, repeat: int, kind: str) -> float:
    """Events/s through ``POST /events``, BATCH events a request (``kind``: see BATCH_KINDS)."""
    with Client(server.url, server.token) as client:
        walls = []
        for n in range(repeat):
            events = [Event("batch", {"i": i, "hour": "2026-11-27T10:00"}) for i in range(BATCH)]
            if kind == "client":
                start = time.perf_counter()
                offsets = client.send_events(events)
            elif kind == "per-event":
                tag = f"{time.time_ns()}-{n}"
                start = time.perf_counter()
                offsets = client.send_events(events, [f"{tag}-{i}" for i in range(BATCH)])
            else:
                body = {"events": [{"key": e.key, "value": e.value} for e in events]}
                start = time.perf_counter()
                offsets = client.request("POST", "/events", body)["offsets"]
            walls.append(time.perf_counter() - start)
            assert len(set(offsets)) == BATCH
    return BATCH * repeat / sum(walls)


# -- latency ---------------------------------------------------------------------------------


class StatusFollower:
    """Task status events from the service's stream, in a queue."""

    def __init__(self, server: ServerInfo, since: int) -> None:
        self.client = Client(server.url, server.token)
        self.stop = threading.Event()
        self.queue: queue.Queue[Event] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(since,), daemon=True)
        self.thread.start()

    def _run(self, since: int) -> None:
        for event in self.client.stream(since, stop=self.stop):
            if event.key == keys.TASK_STATUS:
                self.queue.put(event)

    def wait(self, workflow: str, status: str, timeout: float = 120.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {status} status of {workflow} within {timeout} s")
            event = self.queue.get(timeout=left)
            if event.value["workflow"] == workflow and event.value["status"] == status:
                return event
            if event.value["status"] == "FAILED":
                raise RuntimeError(f"a task failed: {event.value}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.client.close()


def to_epoch(when: datetime | None) -> float:
    assert when is not None
    return when.astimezone(UTC).timestamp()


def event_to_running(server: ServerInfo, samples: int) -> tuple[list[float], list[float]]:
    """Latencies (client send -> RUNNING, go event -> RUNNING) in seconds."""
    with Workflow("latency") as wf:
        BashTask("run", command="true")
    wf.trigger_on("go")
    with Client(server.url, server.token) as client:
        client.submit(wf)
        follower = StatusFollower(server, client.health()["latest_offset"])
        from_send, from_event = [], []
        try:
            for i in range(samples + 3):  # the first ones warm up
                sent = time.time()
                offset = client.send_event("go", {"i": i})
                running = follower.wait("latency", "RUNNING")
                follower.wait("latency", "SUCCESS")
                go = client.events(since=offset - 1, limit=1)[0]
                if i >= 3:
                    from_send.append(to_epoch(running.create_time) - sent)
                    from_event.append(to_epoch(running.create_time) - to_epoch(go.create_time))
        finally:
            follower.close()
    return from_send, from_event


def notebook_latency(server: ServerInfo, folder: Path, samples: int) -> dict[str, list[float]]:
    """Event-to-SUCCESS of a one-cell notebook task, and plain papermill runs of the same notebook."""
    import papermill

    path = folder / "one_cell.ipynb"
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [new_code_cell("x = 1 + 1")]
    nbformat.write(nb, path)
    with Workflow("notebook_latency") as wf:
        NotebookTask("cell", notebook=path)
    wf.trigger_on("nb_go")
    fresh = (
        "import sys, papermill; papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name='python3', "
        "progress_bar=False, shutdown_kernel='immediate')"
    )
    out: dict[str, list[float]] = {"task": [], "in_process": [], "fresh": []}
    with Client(server.url, server.token) as client:
        client.submit(wf)
        follower = StatusFollower(server, client.health()["latest_offset"])
        try:
            for i in range(samples + 1):  # the first round warms up
                sent = time.time()
                client.send_event("nb_go", {"i": i})
                success = follower.wait("notebook_latency", "SUCCESS")
                task = to_epoch(success.create_time) - sent

                start = time.perf_counter()
                papermill.execute_notebook(
                    str(path),
                    str(folder / "out_in_process.ipynb"),
                    kernel_name="python3",
                    progress_bar=False,
                    shutdown_kernel="immediate",
                )
                in_process = time.perf_counter() - start

                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", fresh, str(path), str(folder / "out_fresh.ipynb")],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                fresh_time = time.perf_counter() - start
                if i >= 1:
                    out["task"].append(task)
                    out["in_process"].append(in_process)
                    out["fresh"].append(fresh_time)
        finally:
            follower.close()
    return out


def fill_log(home: Path, size: int) -> None:
    """Append ``size`` events no rule names to a new home's log, as history, before the service opens it."""
    start = time.perf_counter()
    log = EventLog(database_path(home))
    chunk = 100_000
    for first in range(0, size, chunk):
        log.append_many([Event("history", i) for i in range(first, min(size, first + chunk))])
    log.db.close()
    print(f"log filled with {size:,} events in {time.perf_counter() - start:.1f} s")


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for development")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of the service during ingest")
    parser.add_argument("--single-only", action="store_true", help="only the single-event requests")
    parser.add_argument("--rounds", type=int, help="rounds of the 50-client cases (default 3; --quick 1)")
    parser.add_argument(
        "--log-size", type=int, help="events in the log before the service starts (default 1,000,000; --quick 0)"
    )
    args = parser.parse_args(argv)
    log_size = args.log_size if args.log_size is not None else (0 if args.quick else 1_000_000)

    singles = 300 if args.quick else 1_000
    per_client = 20 if args.quick else 100
    rounds = args.rounds or (1 if args.quick else 3)
    # 20: the log checkpoints every ~190,000 events here (~0.1-0.2 s); 10 batches hold 0 or 1 of them.
    batch_repeat = 3 if args.quick else 20
    latency_samples = 30 if args.quick else 100
    notebook_samples = 3 if args.quick else 5

    print("aiflow-nb benchmark: the service over HTTP")
    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="aiflow-bench-http-"))
    home = tmp / "home"
    if log_size:
        fill_log(home, log_size)
    server, _ = control.start(home)
    print(f"service: pid {server.pid} at {server.url}, home {home}\n")
    profiler = Profiler(args.profile, server.pid, tmp)
    rows: list[list[str]] = []
    notes: list[str] = []

    def per_event(cpu: float, events: int) -> str:
        return f"{cpu / events * 1e6:,.0f} µs"

    try:
        cpu = cpu_seconds(server.pid)
        rate, lat = profiler.run("1 client", lambda: single_client(server, singles))
        cpu, used = cpu_seconds(server.pid), cpu_seconds(server.pid) - cpu
        rows.append(
            [
                "single events, 1 client",
                f"{singles:,} requests",
                f"{fmt_rate(rate)} req/s",
                per_event(used, singles),
                f"p50 {ms(percentile(lat, 50))} ms, p99 {ms(percentile(lat, 99))} ms",
                "-",
                "-",
            ]
        )

        # The 50-client cases in rounds, one of each per round: a 2-second round can fall in a stall
        # of the VM (the bare handler's rate moves 2x from one run to the next); each row is the
        # median round, with the slowest and fastest.
        runs: dict[str, list[float]] = {"threads": [], "load": [], "bare": [], "procs": []}
        waits: dict[str, list[float]] = {"threads": [], "load": [], "bare": []}
        used_by: dict[str, float] = dict.fromkeys(runs, 0.0)
        client_cpu: list[float] = []

        def measured(kind: str, title: str, fn: Any, first: bool) -> Any:
            before = cpu_seconds(server.pid)
            result = profiler.run(title, fn) if first else fn()
            used_by[kind] += cpu_seconds(server.pid) - before
            return result

        for r in range(rounds):
            rate, lat, busy = measured(
                "threads", "50 client threads", lambda: threaded_clients(server, 50, per_client), r == 0
            )
            runs["threads"].append(rate)
            waits["threads"] += lat
            client_cpu.append(busy)
            load = measured(
                "load", "50 connections", lambda: _load.post_events(server.url, server.token, 50, per_client), r == 0
            )
            runs["load"].append(load.rate)
            waits["load"] += load.latencies
            bare = _load.bare_tornado(50, per_client)
            used_by["bare"] += bare.server_cpu or 0.0
            runs["bare"].append(bare.rate)
            waits["bare"] += bare.latencies
            runs["procs"].append(measured("procs", "", lambda: process_clients(server, 5, 10, per_client), False))

        def rounds_of(rates: list[float]) -> str:
            return f"rounds {fmt_rate(min(rates))} - {fmt_rate(max(rates))}" if len(rates) > 1 else "one round"

        def latency(kind: str) -> str:
            values = waits[kind]
            return f"p50 {ms(percentile(values, 50))} ms, p99 {ms(percentile(values, 99))} ms; {rounds_of(runs[kind])}"

        requests = f"{rounds} x {50 * per_client:,} requests"
        bare_rate = statistics.median(runs["bare"])
        for kind, label in (
            ("threads", "single events, 50 clients (threads)"),
            ("load", "single events, 50 connections (asyncio load generator)"),
            ("bare", "  reference: a bare tornado handler, same load"),
            ("procs", "single events, 50 clients (5 procs x 10 threads)"),
        ):
            rate = statistics.median(runs[kind])
            targeted = kind == "load"
            ratio = rate / bare_rate
            rows.append(
                [
                    label,
                    requests,
                    f"{fmt_rate(rate)} req/s" + (f" ({ratio:.2f}x bare)" if kind != "bare" else ""),
                    per_event(used_by[kind], rounds * 50 * per_client),
                    latency(kind) if kind in waits else rounds_of(runs[kind]),
                    f">= {SINGLE_TARGET:g}x bare" if targeted else "-",
                    verdict(ratio, SINGLE_TARGET) if targeted else "-",
                ]
            )
        ratio = statistics.median(runs["load"]) / bare_rate
        record(
            f"single events, 50 connections, {log_size:,} in the log (x bare handler)",
            ratio,
            "x",
            f">= {SINGLE_TARGET:g} {verdict(ratio, SINGLE_TARGET)}",
        )
        notes.append(
            f"the 50 client threads used {statistics.median(client_cpu):.2f} CPU seconds per second of this process"
        )

        if not args.single_only:
            cpu = cpu_seconds(server.pid)
            for kind, label in BATCH_KINDS.items():
                rate = profiler.run(
                    f"batches of {BATCH:,} ({kind})", lambda kind=kind: batches(server, batch_repeat, kind)
                )
                cpu, used = cpu_seconds(server.pid), cpu_seconds(server.pid) - cpu
                # The target is for what a client sends; keys of its own per event are the user's choice.
                targeted = kind != "per-event"
                rows.append(
                    [
                        label,
                        f"{batch_repeat} x {BATCH:,} events",
                        f"{fmt_rate(rate)} events/s",
                        per_event(used, batch_repeat * BATCH),
                        "-",
                        f">= {BATCH_TARGET:,} events/s" if targeted else "-",
                        verdict(rate, BATCH_TARGET) if targeted else "-",
                    ]
                )
                record(
                    f"batches, {kind} keys, {log_size:,} in the log",
                    rate,
                    "events/s",
                    f">= {BATCH_TARGET:,} {verdict(rate, BATCH_TARGET)}" if targeted else "-",
                )

            from_send, from_event = event_to_running(server, latency_samples)
            for label, values in (("send -> task RUNNING", from_send), ("go event committed -> RUNNING", from_event)):
                p50 = percentile(values, 50) * 1000
                if label.startswith("send"):
                    record(
                        f"event to RUNNING p50, {log_size:,} in the log",
                        p50,
                        "ms",
                        f"<= {RUNNING_P50_TARGET:g} {verdict(p50, RUNNING_P50_TARGET, higher_is_better=False)}",
                    )
                rows.append(
                    [
                        label,
                        f"{len(values)} events, one at a time",
                        f"p50 {p50:,.1f} ms",
                        "-",
                        f"p99 {ms(percentile(values, 99))} ms",
                        f"p50 <= {RUNNING_P50_TARGET:g} ms" if label.startswith("send") else "-",
                        verdict(p50, RUNNING_P50_TARGET, higher_is_better=False) if label.startswith("send") else "-",
                    ]
                )

            nb = notebook_latency(server, tmp, notebook_samples)
            for label, key in (
                ("one-cell notebook task: send -> SUCCESS", "task"),
                ("papermill.execute_notebook, this process", "in_process"),
                ("papermill.execute_notebook, fresh interpreter", "fresh"),
            ):
                values = nb[key]
                rows.append(
                    [
                        label,
                        f"{len(values)} runs",
                        f"median {statistics.median(values):.2f} s",
                        "-",
                        f"min {min(values):.2f} s, max {max(values):.2f} s",
                        "-",
                        "-",
                    ]
                )
    finally:
        control.stop(home)
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(["case", "size", "result", "service CPU per event", "spread", "target", ""], rows)
    for note in notes:
        print(f"- {note}")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
