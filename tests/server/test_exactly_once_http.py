"""Exactly-once over HTTP across ``kill -9`` of the service.

A producer (eight threads sharing one ``aiflow_nb.client.Client``, which finds
the service in ``server.json``) sends 1,000 ``tick`` events, one call per
event, so each carries its own idempotency key, which the client reuses when
it retries the call across a restart.  Each event triggers an execution of a
workflow whose one task appends the offset of its triggering event to a file.

It runs on the default executor and on the dask executor (a real
LocalCluster: the runs go on across the kills, and the restarted service
attaches to them again).  Twice, while the producer is mid-stream, the
service kills itself with SIGKILL right after a group commit, before it
answers the requests of that group (the fault-injection hook of
``aiflow_nb.faults``, armed at a seeded pass of ``commit.after``), and the
test starts a new one on the same home.  Then every send was acknowledged,
the log holds exactly one event per send (at the acknowledged offset; the
retried, already committed sends included), every event produced exactly
one execution with exactly one successful task execution, and the file
holds each offset exactly once.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiflow_nb import Event
from aiflow_nb.client import CHUNK_EVENTS, Client
from aiflow_nb.faults import ENV
from tests.conftest import RunningService
from tests.scheduler.crash_child import assert_each_offset_ran_once
from tests.scheduler.crash_child import workflow as ticks_workflow
from tests.server import wait

TOTAL = 1000
#: The producer stays at most this many events ahead of the task that records them,
#: so the stream lasts as long as the work and each kill lands among running tasks.
BACKLOG = 48
#: Threads of the producer.
SENDERS = 8
SEED = 3


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


class Producer:
    """Sends tick 0..TOTAL-1 from a few threads, one request per event; records what was acknowledged.

    The threads share one Client (it keeps a connection per thread), so
    concurrent sends are grouped into one commit by the service, as in real use.
    """

    def __init__(self, home: Path, out: Path, threads: int = SENDERS) -> None:
        self.home = home
        self.out = out
        self.acked: dict[int, int] = {}  # tick number -> offset the service answered
        self.inflight: set[int] = set()  # tick numbers being sent right now
        self.errors: list[BaseException] = []
        self.halt = threading.Event()
        self._next = iter(range(TOTAL))
        self.lock = threading.Lock()
        # No url/token: the client finds the service in server.json, and again after a restart.
        self.client = Client(home=home, retry_for=90.0)
        self.threads = [threading.Thread(target=self._send, name=f"producer-{n}", daemon=True) for n in range(threads)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for every thread; True if all ended."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)

    def close(self) -> None:
        self.halt.set()
        self.join(30)
        self.client.close()

    def _send(self) -> None:
        try:
            while not self.halt.is_set():
                with self.lock:
                    i = next(self._next, None)
                if i is None:
                    return
                deadline = time.monotonic() + 120
                while line_count(self.out) < i - BACKLOG:
                    if self.halt.is_set():
                        return
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"tasks stopped recording offsets ({line_count(self.out)} lines)")
                    time.sleep(0.005)
                with self.lock:
                    self.inflight.add(i)
                self.acked[i] = self.client.send_event("tick", {"i": i})
                with self.lock:
                    self.inflight.discard(i)
        except BaseException as exc:
            self.errors.append(exc)
            self.halt.set()


@pytest.fixture
def restarted() -> Iterator[list[RunningService]]:
    """Services the test starts; stopped at teardown."""
    services: list[RunningService] = []
    yield services
    for running in services:
        running.stop()


def wait_until(predicate, producer: Producer, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if producer.errors:
            raise AssertionError(f"the producer failed before {what}") from producer.errors[0]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("executor", ["kernel-pool", "dask"])
def test_every_acknowledged_event_runs_its_task_exactly_once_across_two_sigkills(
    home: Path, tmp_path: Path, executor: str, request: pytest.FixtureRequest, restarted: list[RunningService]
) -> None:
    flags = ["--executor", executor]
    if executor == "dask":
        flags += ["--dask-address", request.getfixturevalue("dask_cluster")]
    rng = random.Random(SEED)
    # Kill after a seeded number of group commits, twice; the third service runs to the end.
    armed = [f"commit.after:{rng.randint(20, 50)}" for _ in range(2)]  # a commit holds 1 to 8 sends
    service = RunningService(home, flags, env={ENV: armed[0]}).start()
    restarted.append(service)
    out = tmp_path / "offsets.txt"
    service.client().submit(ticks_workflow(str(out)))
    at_kill: list[tuple[int, int]] = []  # (acknowledged events, offsets in the file) at each kill
    inflight_at_kill: list[tuple[set[int], datetime]] = []
    current = service
    producer = Producer(home, out)
    producer.start()
    try:
        for n in range(2):
            wait_until(lambda s=current: not s.alive, producer, 120, f"the service to reach {armed[n]}")
            assert current.returncode == -signal.SIGKILL, f"the service armed with {armed[n]} ended otherwise"
            with producer.lock:
                inflight_at_kill.append((set(producer.inflight), datetime.now(UTC)))
            at_kill.append((len(producer.acked), line_count(out)))
            # Mid-stream: the producer had more to send.
            assert len(producer.acked) < TOTAL, at_kill
            current = RunningService(home, flags, env={ENV: armed[1]} if n == 0 else None).start()
            restarted.append(current)
        finished = producer.join(timeout=150)
        assert finished, f"the producer did not finish ({len(producer.acked)} acknowledged)"
    finally:
        producer.close()
    if producer.errors:
        raise AssertionError(f"the producer failed after kills at acked/lines {at_kill}") from producer.errors[0]
    # The client retried every send across both restarts: all were acknowledged.
    assert sorted(producer.acked) == list(range(TOTAL))
    acked_offsets = Counter(producer.acked.values())
    assert len(acked_offsets) == TOTAL, "two sends were acknowledged with the same offset"

    client = current.client()

    def all_finished() -> bool:
        executions = client.executions(workflow="ticks")
        return len(executions) >= TOTAL and all(ex.status.finished for ex in executions)

    deadline = time.monotonic() + 120
    while not all_finished():
        if time.monotonic() > deadline:
            pytest.fail(f"kills at acked/lines {at_kill}: not every execution finished ({line_count(out)} offsets)")
        time.sleep(0.1)

    # The log: exactly one event per send, at the offset the producer was told.
    ticks = client.events(key="tick", limit=10_000)
    per_tick = Counter(e.value["i"] for e in ticks)
    assert [i for i, n in per_tick.items() if n != 1] == [], f"doubled sends (kills at acked/lines {at_kill})"
    assert {e.value["i"]: e.offset for e in ticks} == producer.acked
    # The riskiest retries happened: sends in flight at a kill that the killed service had
    # committed but not answered; the client sent them again and each is in the log once (above).
    created = {e.value["i"]: e.create_time for e in ticks}
    committed_unanswered = sorted(i for sent, killed in inflight_at_kill for i in sent if created[i] < killed)
    assert committed_unanswered, (
        f"no send was committed and unanswered at a kill (in flight: {[sorted(s) for s, _ in inflight_at_kill]})"
    )

    # One execution per acknowledged event, each with one successful run of its task, which wrote its offset once.
    assert_each_offset_ran_once(
        client.executions(workflow="ticks"),
        client.task_executions,
        acked_offsets,
        out,
        f"kills at acked/lines {at_kill}",
    )


@pytest.mark.parametrize("point", ["http.read:1", "commit.after:1"])
def test_a_streamed_batch_retried_across_a_kill_is_appended_once(
    home: Path, point: str, restarted: list[RunningService]
) -> None:
    # Killed once the batch was read (nothing stored), or once it was committed (not answered):
    # the client sends the same chunks again to the new service, under the same key.
    service = RunningService(home, env={ENV: point}).start()
    restarted.append(service)
    events = [Event("bulk", {"i": i}) for i in range(2 * CHUNK_EVENTS + 500)]
    answer: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    client = Client(home=home, retry_for=90.0)

    def send() -> None:
        try:
            answer["offsets"] = client.send_events(events)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        wait(lambda: not service.alive, 60, f"the service to reach {point}")
        assert service.returncode == -signal.SIGKILL
        again = RunningService(home).start()
        restarted.append(again)
        sender.join(120)
        assert not sender.is_alive() and not errors, errors
    finally:
        client.close()
    offsets = answer["offsets"]
    stored = again.client().events(key="bulk", limit=10_000)
    assert [(e.offset, e.value["i"]) for e in stored] == list(zip(offsets, range(len(events)), strict=True))
