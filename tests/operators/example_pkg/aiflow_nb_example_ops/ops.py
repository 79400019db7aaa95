"""``TickerOperator``: the ticker job (``job.py``) as an aiflow-nb task kind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiflow_nb.errors import SpecError
from aiflow_nb.operators import Field, Handle, JobFailed, JobStatus, Operator, OperatorContext
from aiflow_nb.workflow.tasks import OperatorTask

#: Seconds the job has to end after its stop command before it is killed.
STOP_TIMEOUT = 10.0


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else fields[19].decode()


def _alive(handle: Handle) -> bool:
    started = _start_time(handle["pid"])
    return started is not None and started == handle["started"]


class TickerOperator(Operator):
    name = "ticker"
    fields = {
        "out": Field(str, required=True, doc="the file the job appends its ticks to"),
        "ticks": Field(int, default=0, doc="how many ticks (0: until stopped)"),
        "interval": Field((int, float), default=0.1, doc="seconds between two ticks"),
        "fail_at": Field(int, default=0, doc="fail at this tick (0: never)"),
    }
    poll_interval = 0.1

    @classmethod
    def check(cls, task: str, params: dict[str, Any]) -> None:
        if params["ticks"] < 0 or params["interval"] <= 0:
            raise SpecError(f"task {task!r}: ticks must be >= 0 and interval > 0")

    def start(self, context: OperatorContext) -> Handle:
        p = context.params
        state = context.run_dir / "ticker"
        state.mkdir(exist_ok=True)
        out = Path(p["out"])
        if not out.parent.is_dir():
            raise JobFailed(f"the ticker cannot start: folder {str(out.parent)!r} does not exist")
        args = [str(state), str(out), str(p["ticks"]), str(p["interval"]), str(p["fail_at"])]
        with context.log_path.open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "aiflow_nb_example_ops.job", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **context.environment},
                start_new_session=True,  # its own: it outlives its runner, and only its stop command stops it
            )
        context.log(f"ticker job started as pid {popen.pid}")
        return {"pid": popen.pid, "started": _start_time(popen.pid), "state": str(state)}

    def poll(self, handle: Handle) -> JobStatus:
        try:
            ended = json.loads((Path(handle["state"]) / "exit.json").read_text())
        except (OSError, ValueError):
            ended = None
        if ended is not None:
            return JobStatus.success() if ended["code"] == 0 else JobStatus.failed(ended["error"])
        if _alive(handle):
            return JobStatus.running()
        return JobStatus.failed("the ticker job died without an exit status")

    def stop(self, handle: Handle) -> None:
        subprocess.run([sys.executable, "-m", "aiflow_nb_example_ops.ctl", "stop", handle["state"]], check=False)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(handle) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(handle):
            os.kill(handle["pid"], signal.SIGKILL)

    def reattach(self, handle: Handle) -> bool:
        return _alive(handle) or (Path(handle["state"]) / "exit.json").exists()


class TickerTask(OperatorTask):
    """``TickerTask("t", out=PATH, ticks=5)``: the subclass form of ``Task("t", operator="ticker", ...)``."""

    operator_name = "ticker"

    def __init__(self, name: str, *, out: str, ticks: int = 0, interval: float = 0.1, **common: Any) -> None:
        super().__init__(name, params={"out": out, "ticks": ticks, "interval": interval}, **common)
