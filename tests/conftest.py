"""Shared fixtures: a temp home per test, an engine, and process cleanup."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()  # as the service and task processes do: seconds per import of nbformat

from aiflow_nb import BashTask, Engine, TaskAction, Workflow, WorkflowStatus  # noqa: E402
from aiflow_nb.client import Client  # noqa: E402
from aiflow_nb.executors import process  # noqa: E402
from aiflow_nb.executors.runner import claim  # noqa: E402


def kill_runs(home: Path) -> None:
    """Kill every task process a test's engine left behind, by pid.

    A run launched so late that its runner has not claimed it yet is claimed
    here: the runner then finds it taken and runs nothing.
    """
    for task in home.glob("runs/*/*/task.json"):
        if claim(task.parent, "claimed by the test's clean-up\n"):
            continue
        parsed = process.parse_identity((task.parent / "claim").read_text())
        if parsed and process.alive(*parsed):
            try:
                os.killpg(parsed[0], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def kill_fork_servers(home: Path) -> None:
    """Kill, by pid, the fork servers of ``home`` a test left behind, and what they forked.

    A kernel started the usual way after its fork server died may start a server of its own (the
    provisioner's), which no engine owns: it would wait out its idle time.  A fork shares its
    server's command line, so the children forked ahead and the runs go with it.
    """
    sockets = str(home / "fork") + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"aiflow_nb.executors.forking.server" in argv and any(
            a.decode(errors="replace").startswith(sockets) for a in argv
        ):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh aiflow-nb home; HOME points at a temp folder too (Jupyter writes there)."""
    home = tmp_path / "aiflow_home"
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("AIFLOW_NB_HOME", str(home))
    yield home
    kill_runs(home)
    kill_fork_servers(home)


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    """An engine on the temp home; tests drive it with ``engine.wait_for``."""
    eng = Engine(home, stop_grace=2.0)
    yield eng
    report = eng.verify()  # whatever the test did, the stored state is what the log implies
    eng.close()
    assert report.consistent, "\n".join(report.lines())


@pytest.fixture(autouse=True)
def fail_on_logged_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Like tornado's ExpectLog: an unexpected ERROR from aiflow-nb fails the test."""
    caplog.set_level(logging.INFO, logger="aiflow_nb")
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("aiflow_nb")]
    if errors:
        pytest.fail("unexpected errors logged: " + "; ".join(r.getMessage() for r in errors))


class RunningService:
    """A real service process on a free loopback port, for one test."""

    def __init__(self, home: Path, flags: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.home = home
        #: More flags of ``python -m aiflow_nb.server`` (``--executor dask ...``).
        self.flags = list(flags or [])
        #: More environment variables (``AIFLOW_NB_FAULTS`` to arm a crash point).
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[Client] = []

    def start(self, timeout: float = 60.0) -> RunningService:
        from aiflow_nb.server import control, info

        old = info.read(self.home)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiflow_nb.server", "--home", str(self.home), "--port", "0", "--quiet", *self.flags],
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = info.read(self.home)
            if server is not None and server.pid == self.proc.pid and server != old and control.healthy(server):
                self.info = server
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.proc.returncode}")
            time.sleep(0.05)
        raise TimeoutError("the service did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def client(self) -> Client:
        """A client of this service (closed when the test ends)."""
        client = Client(self.info.url, self.info.token, home=self.home)
        self.clients.append(client)
        return client

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the service process (not its tasks) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def service(home: Path) -> Iterator[RunningService]:
    """A started service on the temp home; stopped (then killed) after the test."""
    running = RunningService(home).start()
    yield running
    report = running.client().request("GET", "/verify") if running.alive else {"consistent": True}
    running.stop()
    assert report["consistent"], report["differences"]


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``distributed.LocalCluster`` (2 worker processes, no dashboard); its scheduler's address.

    One for the session: it takes seconds to start.  Its workers get a HOME
    and a local directory of their own; closing it ends them (checked by pid).
    """
    from distributed import Client, LocalCluster

    folder = tmp_path_factory.mktemp("dask")
    (folder / "home").mkdir()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=":0",  # no fixed port: 8787 may be taken by another cluster on the machine
        local_directory=str(folder / "work"),
        env={"HOME": str(folder / "home")},
    )
    try:
        yield cluster.scheduler_address
    finally:
        # Every worker process, restarted ones included: none may outlive the session.
        with Client(cluster.scheduler_address, timeout=30) as client:
            pids = set(client.run(os.getpid).values())
        cluster.close()
        for pid in pids:
            if process.alive(pid, None):
                os.kill(pid, signal.SIGKILL)


# -- one scenario for "why" and replay: an event sent from inside a task -------------------------------------

#: What the ``stream`` task of :func:`inside_workflow` runs: it sends ``hour_complete`` from inside its run.
SEND_FROM_INSIDE = "from aiflow_nb.client import send_event; send_event('hour_complete', {'hour': 10})"


def inside_workflow() -> Workflow:
    """``stream`` sends ``hour_complete`` from inside its run (so scoped to its execution); ``train`` starts on it."""
    with Workflow("inside") as wf:
        BashTask("stream", command=f'{sys.executable} -c "{SEND_FROM_INSIDE}"')
        BashTask("train", command="true").action_on_event_received(TaskAction.START, "hour_complete")
    return wf


@dataclass(frozen=True)
class InsideRun:
    """One finished execution of :func:`inside_workflow` on a real service."""

    service: RunningService
    client: Client
    workflow: Workflow
    execution_id: int


@pytest.fixture
def inside_run(service: RunningService) -> InsideRun:
    """:func:`inside_workflow` submitted and run once to SUCCESS on the test's service."""
    from tests.server import wait

    client = service.client()
    wf = inside_workflow()
    client.submit(wf)
    ex_id = client.start_execution(wf.name)
    wait(lambda: client.execution(ex_id).status is WorkflowStatus.SUCCESS, 60, "the execution SUCCESS")
    return InsideRun(service, client, wf, ex_id)
