"""Starting, stopping and restarting the service: detached start, graceful stop, re-attach after a crash."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import BashTask, TaskStatus, Workflow
from aiflow_nb.client import Client
from aiflow_nb.executors import process
from aiflow_nb.server import info
from aiflow_nb.server.main import is_loopback
from tests.server import wait, wait_execution, wait_for_file, wait_task
from tests.test_cli import cli, cli_json, mistake

Pid = tuple[int, "str | None"]


@pytest.fixture
def services(home: Path) -> Iterator[list[Pid]]:
    """Pids of the detached services a test starts; any still alive at the end is killed."""
    started: list[Pid] = []
    yield started
    current = info.read(home)
    if current is not None:
        started.append((current.pid, current.started))
    for pid, since in started:
        if process.alive(pid, since):
            os.kill(pid, signal.SIGKILL)
            wait(lambda p=pid, s=since: not process.alive(p, s), 30, f"service {pid} to die")


def start(home: Path, services: list[Pid]) -> dict[str, object]:
    started = cli_json(home, "server", "start")
    services.append((int(started["pid"]), process.start_time(int(started["pid"]))))
    return dict(started)


def task_pid(home: Path, te_id: int, attempt: int = 1) -> Pid:
    """The task's runner process, from its claim file (written by the runner once it runs)."""
    claim = home / "runs" / str(te_id) / str(attempt) / "claim"
    return wait(lambda: claim.exists() and process.parse_identity(claim.read_text()), 30, f"the claim of run {te_id}")


def kill_hard(pid: int, since: str | None, group: bool = False) -> None:
    (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    wait(lambda: not process.alive(pid, since), 30, f"process {pid} to die")


def test_start_status_stop(home: Path, services: list[Pid]) -> None:
    started = start(home, services)
    assert started["started"] is True
    pid = int(started["pid"])  # type: ignore[call-overload]
    # It returned once the service answers: no waiting needed.
    with Client(home=home) as client:
        assert client.health()["status"] == "ok"
        offset = client.send_event("before-second-start", 1)
    server = info.read(home)
    assert server is not None and (server.pid, server.url) == (pid, started["url"])
    assert stat.S_IMODE((home / "server.json").stat().st_mode) == 0o600

    # A second start reports the running one and changes nothing.
    again = cli_json(home, "server", "start")
    assert (again["started"], again["pid"], again["url"]) == (False, pid, started["url"])
    text = cli(home, "server", "start").stdout
    assert f"already running at {started['url']} (pid {pid}" in text
    # So does running the service by hand on the same home.
    direct = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.server", "--home", str(home), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert direct.returncode == 1 and f"already running for {home}" in direct.stderr
    assert "Traceback" not in direct.stderr
    assert info.read(home) == server
    with Client(home=home) as client:
        assert [(e.offset, e.value) for e in client.events(key="before-second-start")] == [(offset, 1)]

    status = cli_json(home, "server", "status")
    assert (status["running"], status["healthy"], status["pid"], status["url"]) == (True, True, pid, server.url)
    assert cli(home, "server", "status").stdout.startswith(f"running at {server.url} (pid {pid}")

    assert cli_json(home, "server", "stop") == {"stopped": True, "pid": pid}
    assert not (home / "server.json").exists()
    assert not process.alive(pid, server.started)
    assert cli(home, "server", "status", code=3).stdout.startswith("no aiflow-nb service is running")
    assert cli_json(home, "server", "stop")["stopped"] is False

    # What was committed is there after a new start.
    start(home, services)
    with Client(home=home) as client:
        assert [e.offset for e in client.events(key="before-second-start")] == [offset]
    cli(home, "server", "stop")

    # The log file names its loggers.
    log = (home / "logs" / "server.log").read_text()
    lines = log.splitlines()
    entries = [line for line in lines if line[:1].isdigit()]
    assert entries and all(re.match(r"\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ [\w.]+: ", line) for line in entries)
    loggers = set(re.findall(r"^\S+ \S+ [A-Z]+ ([\w.]+): ", log, re.M))
    assert "aiflow_nb.server" in loggers, loggers
    assert "binding to" not in log  # no warning on the loopback address
    assert f"pid {pid}" in log and "stopped" in log


def test_graceful_stop_leaves_the_task_running_and_the_next_start_reattaches_it(
    home: Path, tmp_path: Path, services: list[Pid]
) -> None:
    start(home, services)
    flag = tmp_path / "release"
    with Workflow("long") as wf:
        BashTask("long", command=f"echo started; {wait_for_file(flag)}; echo finished")
    with Client(home=home) as client:
        client.submit(wf)
        ex = client.start_execution("long")
        te = wait_task(client, ex, "long", "RUNNING")
    runner = task_pid(home, te.id)
    assert process.alive(*runner)

    cli(home, "server", "stop")
    assert not (home / "server.json").exists()
    assert process.alive(*runner), "a graceful stop must leave running tasks running"

    start(home, services)
    with Client(home=home) as client:
        # Re-attached, not relaunched: the same run, still RUNNING, same process.
        assert [(t.id, t.status.value, t.attempt) for t in client.task_executions(ex)] == [(te.id, "RUNNING", 1)]
        assert task_pid(home, te.id) == runner
        flag.touch()
        done = wait_task(client, ex, "long", "SUCCESS")
        wait_execution(client, ex, "SUCCESS")
        assert (done.id, done.attempt) == (te.id, 1)
        assert client.task_log(te.id).split() == ["started", "finished"]
    cli(home, "server", "stop")
    loggers = set(re.findall(r"^\S+ \S+ [A-Z]+ ([\w.]+): ", (home / "logs" / "server.log").read_text(), re.M))
    assert {"aiflow_nb.server", "aiflow_nb.executors.local"} <= loggers


def test_sigkill_of_the_service_reattaches_running_tasks(home: Path, tmp_path: Path, services: list[Pid]) -> None:
    start(home, services)
    flags = {name: tmp_path / f"release-{name}" for name in ("early", "late")}
    with Workflow("crash") as wf:
        for name, flag in flags.items():
            BashTask(name, command=f"{wait_for_file(flag)}; echo {name}-done")
    with Client(home=home) as client:
        client.submit(wf)
        ex = client.start_execution("crash")
        runs = {name: wait_task(client, ex, name, "RUNNING") for name in flags}
    server = info.read(home)
    assert server is not None
    kill_hard(server.pid, server.started)
    assert (home / "server.json").exists()  # stale: nobody removed it
    runners = {name: task_pid(home, te.id) for name, te in runs.items()}
    assert all(process.alive(*r) for r in runners.values())

    # "early" ends while no service runs; "late" ends after the next start.
    flags["early"].touch()
    wait(lambda: not process.alive(*runners["early"]), 30, "'early' to end")
    again = start(home, services)
    assert again["started"] is True and again["pid"] != server.pid
    with Client(home=home) as client:
        early = wait_task(client, ex, "early", "SUCCESS")
        assert client.task_execution(runs["late"].id).status.value == "RUNNING"
        flags["late"].touch()
        late = wait_task(client, ex, "late", "SUCCESS")
        wait_execution(client, ex, "SUCCESS")
        assert [(t.id, t.attempt) for t in (early, late)] == [(runs["early"].id, 1), (runs["late"].id, 1)]
        assert len(client.task_executions(ex)) == 2
        assert client.task_log(late.id).strip() == "late-done"
    cli(home, "server", "stop")


def test_sigkill_of_the_service_and_its_tasks_fails_them_and_retries(
    home: Path, tmp_path: Path, services: list[Pid]
) -> None:
    start(home, services)
    never = wait_for_file(tmp_path / "never")
    with Workflow("retried") as retried:
        BashTask(
            "r",
            command=f'if [ "$AIFLOW_NB_ATTEMPT" = 1 ]; then {never}; fi; echo attempt-$AIFLOW_NB_ATTEMPT',
            max_retries=1,
        )
    with Workflow("once") as once:
        BashTask("n", command=never)
    with Client(home=home) as client:
        client.submit(retried)
        client.submit(once)
        ex_r = client.start_execution("retried")
        ex_n = client.start_execution("once")
        te_r = wait_task(client, ex_r, "r", "RUNNING")
        te_n = wait_task(client, ex_n, "n", "RUNNING")
    server = info.read(home)
    assert server is not None
    kill_hard(server.pid, server.started)
    for te in (te_r, te_n):
        kill_hard(*task_pid(home, te.id), group=True)

    start(home, services)
    with Client(home=home) as client:
        failed = wait_task(client, ex_n, "n", "FAILED")
        assert failed.id == te_n.id and failed.error
        wait_execution(client, ex_n, "FAILED")
        retried_run = wait_task(client, ex_r, "r", "SUCCESS")
        assert (retried_run.id, retried_run.attempt) == (te_r.id, 2)
        wait_execution(client, ex_r, "SUCCESS")
        assert "attempt-2" in client.task_log(te_r.id)
        statuses = [
            (e.value["attempt"], e.value["status"])
            for e in client.events(key="aiflow.task.status", limit=10_000)
            if e.value["task_execution_id"] == te_r.id
        ]
        assert statuses.index((1, "RUNNING")) < statuses.index((2, "RUNNING")) < statuses.index((2, "SUCCESS"))
        assert not any(s == "SUCCESS" for a, s in statuses if a == 1)
    cli(home, "server", "stop")


def test_binding_beyond_loopback_needs_a_flag_and_warns(home: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the warning comes first, then binding fails,
    # so nothing is ever exposed beyond this machine.
    command = [sys.executable, "-m", "aiflow_nb.server", "--home", str(home), "--ip", "192.0.2.1", "--port", "0"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "aiflow-nb: --ip 192.0.2.1 is not a loopback address: other machines could reach the service; "
        "add --allow-remote if that is what you want"
    ]
    assert not (home / "server.json").exists()
    done = subprocess.run([*command, "--allow-remote"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "WARNING aiflow_nb.server: binding to 192.0.2.1" in done.stderr
    assert "cannot listen on 192.0.2.1" in done.stderr and "Traceback" not in done.stderr
    assert "binding to 192.0.2.1" in (home / "logs" / "server.log").read_text()
    assert not (home / "server.json").exists()


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback


def test_engine_settings_of_server_start(home: Path, tmp_path: Path, services: list[Pid]) -> None:
    started = cli_json(home, "server", "start", "--executor", "kernel-pool", "--max-parallel", "1", "--stop-grace", "1")
    services.append((int(started["pid"]), process.start_time(int(started["pid"]))))
    client = Client(home=home)
    try:
        with Workflow("two") as wf:
            BashTask("a", command=wait_for_file(tmp_path / "go"))
            BashTask("b", command=wait_for_file(tmp_path / "go"))
        client.submit(wf)
        ex = client.start_execution("two")
        wait(lambda: TaskStatus.RUNNING in [t.status for t in client.task_executions(ex)], 30, "a task to run")
        # One process at a time: the other task waits QUEUED however long the first runs.
        statuses = sorted(t.status.value for t in client.task_executions(ex))
        assert statuses == ["QUEUED", "RUNNING"]
        (tmp_path / "go").touch()
        wait_execution(client, ex, "SUCCESS")
        # The runs went to the kernel pool's spare runners, which log there.
        assert (home / "logs" / "kernel-pool.log").exists()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-parallel", "0", "must be positive"),
        ("--heartbeat-timeout", "soon", "not a number"),
        ("--pool-size", "0", "must be positive"),
    ],
)
def test_bad_engine_settings_start_nothing(home: Path, flag: str, value: str, message: str) -> None:
    assert message in mistake(home, "server", "start", flag, value, code=2)
    assert info.read(home) is None


def spares_of(pid: int) -> list[list[str]]:
    """The command lines of a service's spare runners (its children started with --warm)."""
    children = []
    for tasks in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (tasks / "children").read_text().split()]
    lines = []
    for child in children:
        try:
            argv = [a for a in Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0") if a]
        except OSError:
            continue  # ended meanwhile
        if "--warm" in argv:
            lines.append(argv[argv.index("--warm") + 1 :][:1])
    return lines


def test_pool_settings_of_server_start(home: Path, services: list[Pid]) -> None:
    started = cli_json(home, "server", "start", "--pool-size", "2", "--kernels", "python3")
    pid = int(started["pid"])
    services.append((pid, process.start_time(pid)))
    # Two spares for bash and Python tasks, two with a python3 kernel, started with the service.
    wait(lambda: sorted(map(tuple, spares_of(pid))) == [(), (), ("python3",), ("python3",)], 30, "four spares")


def test_pool_settings_need_the_kernel_pool_executor(home: Path) -> None:
    message = mistake(home, "server", "start", "--executor", "local", "--pool-size", "2", code=1)
    assert "--pool-size and --kernels are settings of the kernel-pool executor, not of local" in message
    assert info.read(home) is None


def test_an_unknown_executor_starts_nothing(home: Path) -> None:
    assert "unknown executor 'nope'; known: dask, kernel-pool, local" in mistake(
        home, "server", "start", "--executor", "nope", code=1
    )
    assert info.read(home) is None


def test_server_start_with_the_dask_executor(
    home: Path, tmp_path: Path, services: list[Pid], dask_cluster: str
) -> None:
    from distributed import Client as DaskClient

    started = cli_json(home, "server", "start", "--executor", "dask", "--dask-address", dask_cluster)
    services.append((int(started["pid"]), process.start_time(int(started["pid"]))))
    client = Client(home=home)
    with Workflow("remote") as wf:
        BashTask("where", command=f'echo "$AIFLOW_NB_PARENT_PID" > {tmp_path / "worker"}')
    client.submit(wf)
    ex = client.start_execution("remote")
    wait_execution(client, ex, "SUCCESS", timeout=120)
    with DaskClient(dask_cluster, timeout=30) as dask:
        assert int((tmp_path / "worker").read_text()) in dask.run(os.getpid).values()
    client.close()
    cli(home, "server", "stop")
