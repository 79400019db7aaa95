"""A damaged home: a clear one-line message, and nothing already stored is lost or changed."""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiflow_nb import Engine, Event
from aiflow_nb.client import Client
from aiflow_nb.errors import ServiceUnavailableError
from aiflow_nb.home import database_path
from aiflow_nb.server import control, info
from tests.server import call
from tests.test_cli import cli

SERVER = [sys.executable, "-m", "aiflow_nb.server", "--port", "0", "--quiet", "--executor", "local"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def filled_home(home: Path, events: int = 5000) -> None:
    """A home whose database holds ``events`` events, closed cleanly (its blocks written out)."""
    with Engine(home, executor="local") as engine:
        engine.send_events([Event("stored", {"i": i}) for i in range(events)])


def start_server(home: Path, *, wrap: list[str] | None = None, **popen: object) -> subprocess.CompletedProcess[str]:
    """Start the service and expect it to refuse at once (exit 1)."""
    return subprocess.run(
        [*(wrap or []), *SERVER, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        **popen,  # type: ignore[call-overload]
    )


def one_clear_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _scribble(at: int, length: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        rng = random.Random(at)
        return data[:at] + bytes(rng.randrange(256) for _ in range(length)) + data[at + length :]

    return damage


#: DuckDB's file: three 4 KiB headers, then blocks of 256 KiB.
HEADERS, BLOCK = 3 * 4096, 256 * 1024

#: The first four DuckDB finds when it opens the file; the last two open fine (it checks a block's
#: checksum when it reads the block) and are found by the engine reading every block at its start.
DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated to 100 bytes": lambda data: data[:100],
    "the header overwritten": _scribble(0, 4096),
    "random bytes": lambda data: random.Random(1).randbytes(len(data)),
    "empty": lambda data: b"",
    "a data block overwritten": _scribble(HEADERS + BLOCK + 100_000, 64),
    "truncated past its header": lambda data: data[: HEADERS + BLOCK],
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_database_is_named_and_left_as_it_is(home: Path, how: str) -> None:
    filled_home(home)
    db = database_path(home)
    data = db.read_bytes()
    assert len(data) > HEADERS + 2 * BLOCK, "the damage below needs a larger database"
    db.write_bytes(DAMAGE[how](data))
    before = digest(db)
    line = one_clear_line(start_server(home), str(db), "is damaged or not an aiflow-nb database", "backup")
    assert digest(db) == before, "the damaged file was changed"
    assert not (home / "server.json").exists()
    assert sorted(p.name for p in home.iterdir() if p.name.startswith("aiflow")) == [db.name], line


def test_the_cli_shows_the_damage_too(home: Path) -> None:
    filled_home(home, events=10)
    database_path(home).write_bytes(b"not a database at all\n" * 100)
    done = cli(home, "server", "start", code=1)
    assert "is damaged or not an aiflow-nb database" in done.stderr, done.stderr


def test_a_server_json_left_by_a_dead_process_is_replaced(home: Path) -> None:
    filled_home(home, events=10)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid, started in ((gone.pid, None), (os.getpid(), "not when this process started")):
        info.write(home, info.ServerInfo("http://127.0.0.1:9", "left-behind", pid, "0.0", started))
        status = cli(home, "server", "status", code=3)
        assert status.stdout.startswith("no aiflow-nb service is running"), status.stdout
        with pytest.raises(ServiceUnavailableError, match="no aiflow-nb service is running"):
            Client(home=home)
    try:
        cli(home, "server", "start")
        server = info.read(home)
        assert server is not None and server.token != "left-behind" and control.healthy(server)
        with Client(home=home) as client:
            assert len(client.events(key="stored")) == 10
    finally:
        cli(home, "server", "stop")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], list[str]]]:
    """A command prefix that runs a program with ``folder`` mounted read-only (a private mount namespace)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    check = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, str(probe), "sh", "-c", f"! touch {probe}/x"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        pytest.skip(f"no read-only mount here (unshare/mount need root): {check.stderr.strip()[:200]}")
    yield lambda folder: ["unshare", "--mount", "sh", "-c", script, str(folder)]


def test_a_home_on_a_read_only_file_system_is_refused_by_name(
    home: Path, tmp_path: Path, read_only: Callable[[Path], list[str]]
) -> None:
    filled_home(home, events=10)
    before = {p.name: digest(p) for p in home.iterdir() if p.is_file()}
    one_clear_line(start_server(home, wrap=read_only(home)), str(home), "is not writable")
    assert {p.name: digest(p) for p in home.iterdir() if p.is_file()} == before
    # A home still to be made, below a read-only folder.
    parent = tmp_path / "ro"
    parent.mkdir()
    one_clear_line(start_server(parent / "home", wrap=read_only(parent)), "cannot create the aiflow-nb home")


def test_a_home_that_is_a_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("mine\n")
    one_clear_line(start_server(path), str(path), "exists and is not a folder")
    assert path.read_text() == "mine\n"


def test_a_full_disk_refuses_changes_keeps_what_is_stored_and_recovers(home: Path) -> None:
    """The disk is simulated by a file size limit (RLIMIT_FSIZE) on the service: writes past it fail (EFBIG)."""
    filled_home(home, events=100)
    limit = sum(p.stat().st_size for p in home.iterdir() if p.is_file()) + 300_000

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.Popen(
        [*SERVER, "--home", str(home)], stdin=subprocess.DEVNULL, preexec_fn=small_disk, start_new_session=True
    )
    try:
        server = wait_healthy(home, proc)
        acked, refused = 0, None
        for _ in range(200):
            batch = {"events": [{"key": "big", "value": "x" * 20_000} for _ in range(10)]}
            response = call(server.url, "POST", "/api/v1/events", batch, token=server.token)
            if response.status != 200:
                refused = response
                break
            acked += 10
        assert refused is not None, "the limit was never reached"
        assert refused.status == 507, refused
        error = json.loads(refused.body)["error"]
        assert error["code"] == "storage_full"
        assert "could not write the database" in error["message"] and error["message"].startswith("disk full: ")
        # Reads still work, and what was acknowledged is there.
        response = call(server.url, "GET", "/api/v1/events", params={"key": "big", "limit": 10_000}, token=server.token)
        assert response.status == 200 and len(json.loads(response.body)["events"]) == acked
    finally:
        proc.terminate()
        proc.wait(60)
    # Room again: everything acknowledged is there, nothing refused is, and new events are taken.
    proc = subprocess.Popen([*SERVER, "--home", str(home)], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        server = wait_healthy(home, proc)
        with Client(server.url, server.token) as client:
            assert len(client.events(key="big", limit=10_000)) == acked
            assert len(client.events(key="stored", limit=10_000)) == 100
            assert client.send_event("after") > 0
    finally:
        proc.terminate()
        proc.wait(60)


def wait_healthy(home: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> info.ServerInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = info.read(home)
        if server is not None and server.pid == proc.pid and control.healthy(server):
            return server
        assert proc.poll() is None, f"the service exited with {proc.returncode}"
        time.sleep(0.05)
    raise TimeoutError("the service did not start")
