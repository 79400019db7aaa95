"""Kernels forked from a fork server (the aiflow-nb-fork provisioner): isolation, fork safety, fall-backs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from nbclient.exceptions import DeadKernelError

from aiflow_nb.executors.forking import provisioner
from aiflow_nb.executors.forking.server import PRELOAD_FAILED
from aiflow_nb.executors.forking.servers import ServerHandle
from aiflow_nb.notebooks import write_code_notebook
from tests.executors.test_kernel_pool import wait_gone

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def started(server: ServerHandle) -> dict[str, Any]:
    server.ensure()
    status: dict[str, Any] = wait_for(lambda: server.status(1.0), f"the {server.kind} fork server to listen")
    return status


def add_spec(root: Path, name: str, *, argv0: str = sys.executable, language: str = "python", **metadata: Any) -> None:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [argv0, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": language,
        "metadata": metadata,
    }
    (folder / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture
def forking(home: Path) -> Iterator[ServerHandle]:
    """python3 kernels of this process are forked (the provisioner by default), from the test home's server."""
    factory = KernelProvisionerFactory.instance()
    was = factory.default_provisioner_name
    provisioner.use_by_default()
    server = provisioner.server_for(home, "python3", (), owner=os.getpid())
    try:
        started(server)
        yield server
    finally:
        factory.default_provisioner_name = was
        server.stop()


def run(notebook: Path, cwd: Path, kernel: str = "python3") -> nbformat.NotebookNode:
    return papermill.execute_notebook(
        str(notebook), str(notebook.with_suffix(".out.ipynb")), kernel_name=kernel, cwd=str(cwd), progress_bar=False
    )


PROBE = """
import json, os
from ipykernel.connect import get_connection_file
json.dump({{"pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "ppid": os.getppid(),
           "connection_file": get_connection_file(), "cwd": os.getcwd(), **seen}}, open({out!r}, "w"))
"""


def test_a_forked_kernel_sees_nothing_of_the_run_before(forking: ServerHandle, tmp_path: Path) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "user_mod_fork.py").write_text("VALUE = 1\n")
    (tmp_path / "elsewhere").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    first = write_code_notebook(
        tmp_path / "first.ipynb",
        f"import os, sys\nsys.path.insert(0, {str(tmp_path / 'mods')!r})\nimport user_mod_fork\nleak = 1\n"
        f"os.environ['AIFLOW_LEAK'] = '1'\nos.chdir({str(tmp_path / 'elsewhere')!r})\nseen = {{}}",
        PROBE.format(out=str(tmp_path / "first.json")),
    )
    second = write_code_notebook(
        tmp_path / "second.ipynb",
        "import os, sys\nseen = {'leak': 'leak' in globals(), 'module': 'user_mod_fork' in sys.modules,\n"
        "        'env': 'AIFLOW_LEAK' in os.environ}",
        PROBE.format(out=str(tmp_path / "second.json")),
    )
    run(first, work)
    run(second, work)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    assert {k: two[k] for k in ("leak", "module", "env", "cwd")} == {
        "leak": False,
        "module": False,
        "env": False,
        "cwd": str(work),
    }
    server_pid = forking.status()["pid"]  # type: ignore[index]
    for seen in (one, two):
        assert seen["ppid"] == server_pid  # forked, not started
        assert seen["pgid"] == seen["sid"] == seen["pid"]  # a session and group of its own
    assert one["pid"] != two["pid"]
    assert one["connection_file"] != two["connection_file"]


def test_the_server_holds_no_thread_before_or_after_a_fork(forking: ServerHandle, tmp_path: Path) -> None:
    before = forking.status()
    assert before is not None and (before["threads"], before["os_threads"]) == (1, 1)
    run(
        write_code_notebook(tmp_path / "x.ipynb", "import threading\nthreading.Thread(target=lambda: None).start()"),
        tmp_path,
    )
    after = forking.status()
    assert after is not None and (after["threads"], after["os_threads"]) == (1, 1)
    assert after["forks"] == before["forks"] + 1


def test_a_kernel_is_the_child_forked_ahead_and_a_dead_one_is_replaced(forking: ServerHandle, tmp_path: Path) -> None:
    probe = "import json, os\njson.dump(os.getpid(), open({out!r}, 'w'))"
    ahead = wait_for(lambda: (forking.status() or {}).get("ahead"), "a child forked ahead")
    run(write_code_notebook(tmp_path / "one.ipynb", probe.format(out=str(tmp_path / "one.json"))), tmp_path)
    assert json.loads((tmp_path / "one.json").read_text()) == ahead
    # The next one waits already; killed while it waits, the next kernel is forked on the spot.
    waiting = wait_for(lambda: (forking.status() or {}).get("ahead"), "the next child forked ahead")
    assert waiting != ahead
    os.kill(waiting, signal.SIGKILL)
    wait_gone({waiting})
    run(write_code_notebook(tmp_path / "two.ipynb", probe.format(out=str(tmp_path / "two.json"))), tmp_path)
    assert json.loads((tmp_path / "two.json").read_text()) not in (ahead, waiting)
    status = forking.status()
    assert status is not None and status["forks"] == 2 and status["ahead"] not in (None, ahead, waiting)


def test_the_child_forked_ahead_ends_with_its_server(home: Path) -> None:
    server = provisioner.server_for(home, "python3", (), owner=os.getpid())
    try:
        ahead = wait_for(lambda: (started(server) or {}).get("ahead"), "a child forked ahead")
        assert server.popen is not None
        os.kill(server.popen.pid, signal.SIGKILL)
        server.popen.wait(30)
        wait_gone({ahead})
    finally:
        server.stop()


@pytest.mark.parametrize("later", [False, True], ids=["launch waits", "listening awaited after the launch"])
def test_a_forked_kernel_listens_once_its_launch_has_returned(forking: ServerHandle, later: bool) -> None:
    # A client connecting at once is taken, not refused (zmq would try again only after its reconnect interval).
    # A manager that does something else first gets its launch back at once and awaits listening() itself.
    async def start_and_connect() -> tuple[int | None, list[str]]:
        manager = AsyncKernelManager(kernel_name="python3")
        manager.listening_later = later  # type: ignore[attr-defined]
        await manager.start_kernel()
        if later:
            await manager.provisioner.listening()  # type: ignore[union-attr]
        try:
            info = manager.get_connection_info()
            refused = []
            for port in ("shell_port", "control_port", "stdin_port", "iopub_port"):
                try:
                    socket.create_connection((str(info["ip"]), int(info[port])), timeout=10).close()
                except ConnectionRefusedError:
                    refused.append(port)
            return manager.provisioner.forked, refused  # type: ignore[union-attr]
        finally:
            await manager.shutdown_kernel(now=True)

    forked, refused = asyncio.run(start_and_connect())
    assert forked is not None
    assert refused == []


def papermill_process(notebook: Path) -> subprocess.Popen[bytes]:
    """papermill runs ``notebook`` in a process of its own, its python3 kernel forked."""
    code = (
        "from aiflow_nb.executors.forking import provisioner; provisioner.use_by_default(); import papermill;"
        f"papermill.execute_notebook({str(notebook)!r}, {str(notebook.with_suffix('.out.ipynb'))!r},"
        " kernel_name='python3', progress_bar=False)"
    )
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_crashing_kernel_leaves_the_server_and_other_kernels_running(forking: ServerHandle, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slow = write_code_notebook(
        tmp_path / "slow.ipynb",
        f"import os, time\nopen({str(tmp_path / 'started')!r}, 'w').close()\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('survived')",
    )
    other = papermill_process(slow)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the slow notebook to run")
        crash = write_code_notebook(tmp_path / "crash.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        with pytest.raises(DeadKernelError):
            run(crash, tmp_path)
    finally:
        gate.touch()
        code = other.wait(120)
    assert code == 0
    assert "survived" in nbformat.read(slow.with_suffix(".out.ipynb"), as_version=4).cells[-1].outputs[0]["text"]
    after = forking.status()
    assert after is not None and after["forks"] == 2
    run(write_code_notebook(tmp_path / "ok.ipynb", "x = 1"), tmp_path)


def test_a_kernel_ends_with_the_process_that_manages_it(forking: ServerHandle, tmp_path: Path) -> None:
    # The manager (here a papermill process of its own) is killed: its forked kernel and the kernel's child go too.
    notebook = write_code_notebook(
        tmp_path / "orphan.ipynb",
        "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(tmp_path / 'pids')!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\ntime.sleep(300)",
    )
    manager = papermill_process(notebook)
    try:
        pids = wait_for(lambda: (tmp_path / "pids").exists() and (tmp_path / "pids").read_text(), "the cell to run")
        kernel, child = (int(p) for p in pids.split())
        assert os.getpgid(kernel) == kernel and os.getpgid(child) == kernel
    finally:
        manager.kill()
        manager.wait()
    wait_gone({kernel, child})


@pytest.mark.parametrize("case", ["another language", "another interpreter"])
def test_a_kernel_it_cannot_fork_starts_the_usual_way(
    forking: ServerHandle, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    specs = tmp_path / "jupyter"
    if case == "another language":
        add_spec(specs, "other", language="not-python")
    else:
        alias = tmp_path / "bin" / "python3"  # another path: as another interpreter would be
        alias.parent.mkdir()
        alias.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        alias.chmod(0o755)
        add_spec(specs, "other", argv0=str(alias))
    monkeypatch.setenv("JUPYTER_PATH", str(specs))
    out = tmp_path / "seen.txt"
    run(
        write_code_notebook(tmp_path / "x.ipynb", f"import os\nopen({str(out)!r}, 'w').write(str(os.getppid()))"),
        tmp_path,
        "other",
    )
    assert int(out.read_text()) == os.getpid()  # started by this process, not forked
    assert not list((home / "fork").glob("kernel-*.sock.starting"))  # and no server started for it


def test_a_spec_names_the_provisioner_with_a_preload(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provisioner.register()
    config = {"provisioner_name": provisioner.NAME, "config": {"preload": ["json"]}}
    add_spec(tmp_path / "jupyter", "forked", kernel_provisioner=config)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    server = provisioner.server_for(home, "forked", ["json"], owner=os.getpid())
    try:
        status = started(server)
        assert status["preloaded"][-1] == "json"
        out = tmp_path / "ppid.txt"
        run(
            write_code_notebook(tmp_path / "x.ipynb", f"import os\nopen({str(out)!r}, 'w').write(str(os.getppid()))"),
            tmp_path,
            "forked",
        )
        assert int(out.read_text()) == status["pid"]
    finally:
        server.stop()


def test_a_preload_that_does_not_import_is_named_and_kernels_start_the_usual_way(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    provisioner.register()
    config = {"provisioner_name": provisioner.NAME, "config": {"preload": ["no_such_module_for_aiflow"]}}
    add_spec(tmp_path / "jupyter", "forked", kernel_provisioner=config)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    server = provisioner.server_for(home, "forked", ["no_such_module_for_aiflow"])
    server.ensure()
    assert server.popen is not None and server.popen.wait(60) == PRELOAD_FAILED
    why = server.failure()
    assert why is not None and "'no_such_module_for_aiflow'" in why and "ModuleNotFoundError" in why
    assert why in server.log_path.read_text()
    caplog.set_level(logging.WARNING, logger="aiflow_nb.executors.forking")
    out = tmp_path / "ppid.txt"
    run(
        write_code_notebook(tmp_path / "x.ipynb", f"import os\nopen({str(out)!r}, 'w').write(str(os.getppid()))"),
        tmp_path,
        "forked",
    )
    assert int(out.read_text()) == os.getpid()
    assert any("no_such_module_for_aiflow" in r.getMessage() for r in caplog.records)
    assert server.status(1.0) is None


def test_the_provisioner_is_an_entry_point_of_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    group = project["project"]["entry-points"]["jupyter_client.kernel_provisioners"]
    module, _, name = group[provisioner.NAME].partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is provisioner.ForkingProvisioner


def test_a_server_that_dies_is_started_again(home: Path) -> None:
    server = provisioner.server_for(home, "python3", (), owner=os.getpid())
    try:
        first = started(server)
        os.kill(first["pid"], signal.SIGKILL)
        assert server.popen is not None
        server.popen.wait(30)
        second = started(server)
        assert second["pid"] != first["pid"]
    finally:
        server.stop()
