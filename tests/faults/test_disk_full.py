"""Issue 33, item 1: the home on a real, small file system (a 4 MiB tmpfs) that fills up.

While events stream in and a task writes its output, a filler file takes the
last free byte.  What must hold: every request is answered (acknowledged, or
refused with 507 ``storage_full`` naming the cause), nothing acknowledged is
lost and nothing refused is stored, the task whose output cannot be written
fails with the reason, and once the filler is gone the same service goes on;
a restart on the same files finds it all.  A home on a read-only or full file
system is refused at start with one line.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import BashTask, EventCondition, Workflow
from aiflow_nb.client import Client
from aiflow_nb.workflow.status import TaskStatus
from tests.conftest import kill_runs
from tests.server import call, wait, wait_for_file
from tests.server.test_damaged_state import SERVER, filled_home, one_clear_line, start_server, wait_healthy
from tests.test_cli import cli

DISK_SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``DISK_SIZE`` mounted for the test (needs root), unmounted after it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (mounting needs root): {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        kill_runs(mount / "home")
        unmounted = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
        if unmounted.returncode != 0:  # something still holds it: detach it now, it goes when released
            subprocess.run(["umount", "--lazy", str(mount)], check=False)
        assert unmounted.returncode == 0, f"the test's tmpfs was still in use: {unmounted.stderr}"


def fill(path: Path) -> int:
    """Write ``path`` until the file system has no room left; the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    written = 0
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            while True:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return written


@dataclass
class Producer:
    """Sends ``tick`` events, one request each, each with its number ``i``; records every answer."""

    url: str
    token: str
    acked: dict[int, int] = field(default_factory=dict)  # i -> offset
    refused: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # i -> (status, error)
    failures: list[str] = field(default_factory=list)  # no answer at all (a hang, a dropped connection)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            body = {"events": [{"key": "tick", "value": {"i": i, "pad": "x" * 2000}}]}
            try:
                response = call(self.url, "POST", "/api/v1/events", body, token=self.token)
            except Exception as exc:  # a timeout (60 s) is a hang
                self.failures.append(f"request {i}: {type(exc).__name__}: {exc}")
                continue
            if response.status == 200:
                self.acked[i] = response.json()["offsets"][0]
            else:
                self.refused[i] = (response.status, response.error())


def stored_ticks(client: Client) -> dict[int, int]:
    """i -> offset of every ``tick`` event in the log."""
    return {e.value["i"]: e.offset for e in client.events(key="tick", limit=10_000) if e.offset is not None}


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_a_disk_that_fills_up_refuses_by_name_loses_nothing_and_recovers_without_a_restart(
    small_disk: Path, tmp_path: Path
) -> None:
    home, filler, release = small_disk / "home", small_disk / "filler", tmp_path / "go"
    err = (tmp_path / "service.err").open("wb")
    proc = subprocess.Popen(
        [*SERVER, "--home", str(home)], stdin=subprocess.DEVNULL, stderr=err, start_new_session=True
    )
    producer: Producer | None = None
    thread: threading.Thread | None = None
    clients: list[Client] = []
    try:
        server = wait_healthy(home, proc)
        client = Client(server.url, server.token)
        clients.append(client)
        with Workflow("writer") as wf:
            # Its output is written once the disk is full: more than the whole disk.
            BashTask("write", command=f"{wait_for_file(release)}; head -c 5000000 /dev/zero > big.out && echo wrote")
        wf.trigger_on(EventCondition("write"))
        client.submit(wf)
        client.send_event("write")
        writer: Any = wait(
            lambda: next(
                (te for e in client.executions(workflow="writer") for te in client.task_executions(e.id)), None
            ),
            60,
            "the writer's run",
        )
        run_dir = home / "runs" / str(writer.id) / str(writer.attempt)
        wait(lambda: (run_dir / "claim").exists(), 60, "the writer's runner to start")

        producer = Producer(server.url, server.token)
        thread = threading.Thread(target=producer.run, name="producer", daemon=True)
        thread.start()
        wait(lambda: len(producer.acked) >= 20, 60, "events acknowledged before the disk fills")

        fill(filler)
        release.touch()  # the writer goes on: its output cannot be written
        wait(lambda: len(producer.refused) >= 20, 60, "requests refused on the full disk")
        wait(lambda: (run_dir / "result.json").exists(), 60, "the writer's result")

        # The CLI says it in one line; reads go on.
        fill(filler)  # what a failed commit gave back; a small event may still fit in the log's last page
        sent = cli(home, "event", "send", "by-hand", "x" * 20_000, code=1)
        assert sent.stderr.count("\n") == 1 and "disk full" in sent.stderr, sent.stderr
        assert client.events(key="write")

        filler.unlink()  # room again: the same service goes on
        refused_while_full = len(producer.refused)
        acked_while_full = len(producer.acked)
        wait(lambda: len(producer.acked) >= acked_while_full + 20, 60, "events acknowledged after room returned")
        producer.stop.set()
        thread.join(120)
        assert not thread.is_alive()
        assert proc.poll() is None, "the service exited"

        assert not producer.failures, producer.failures[:5]  # every request was answered
        assert refused_while_full >= 20
        for i, (status, error) in producer.refused.items():
            assert status == 507 and error["code"] == "storage_full", (i, status, error)
            assert error["message"].startswith("disk full: could not write the database "), error
            assert "\n" not in error["message"], error
        done = wait_task_done(client, writer.id)
        assert done.status is TaskStatus.FAILED and (done.error or "").startswith("disk full"), done
        assert_log_holds(client, producer)
        assert client.send_event("after") > 0
    finally:
        if producer is not None:
            producer.stop.set()
        if thread is not None:
            thread.join(120)
        for each in clients:
            each.close()
        stop_service(proc)
        err.close()
    errors = (tmp_path / "service.err").read_text()
    assert proc.returncode == 0, errors[-2000:]
    assert "Traceback" not in errors, errors[:2000]  # a log file without room drops records quietly

    # A restart on the same files (the database and its WAL were not torn): all of it is there.
    proc = subprocess.Popen([*SERVER, "--home", str(home)], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        server = wait_healthy(home, proc)
        with Client(server.url, server.token) as client:
            assert_log_holds(client, producer)
            done = client.task_execution(writer.id)
            assert done.status is TaskStatus.FAILED and (done.error or "").startswith("disk full"), done
            assert len(client.events(key="after")) == 1
    finally:
        stop_service(proc)


def wait_task_done(client: Client, task_execution_id: int) -> Any:
    return wait(
        lambda: (te := client.task_execution(task_execution_id)).status.value in ("SUCCESS", "FAILED") and te,
        60,
        "the writer's run to end",
    )


def assert_log_holds(client: Client, producer: Producer) -> None:
    """Every acknowledged event is in the log at its offset, and no refused one is."""
    stored = stored_ticks(client)
    assert not set(producer.acked) - set(stored), "an acknowledged event is missing"
    assert {i: stored[i] for i in producer.acked} == producer.acked, "an acknowledged event moved"
    assert not set(stored) & set(producer.refused), "a refused event was stored"


def test_a_home_on_a_full_or_read_only_file_system_is_refused_at_start(small_disk: Path) -> None:
    home = small_disk / "home"
    filled_home(home, events=10)
    fill(small_disk / "filler")
    one_clear_line(start_server(home), str(home), "disk full", "bytes free")
    started = cli(home, "server", "start", code=1)
    assert started.stderr.count("\n") == 1 and "disk full" in started.stderr and str(home) in started.stderr
    (small_disk / "filler").unlink()

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    one_clear_line(start_server(home), str(home), "is not writable", "read-only")
    started = cli(home, "server", "start", code=1)
    assert started.stderr.count("\n") == 1 and "read-only" in started.stderr and str(home) in started.stderr
    one_clear_line(start_server(small_disk / "new"), "cannot create the aiflow-nb home", "read-only")
    assert not (home / "server.json").exists()
