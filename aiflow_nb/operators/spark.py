"""The ``spark`` operator: a PySpark application (batch or Structured Streaming) as its own process.

``Task("t", operator="spark", params={"app": "job.py", "args": [...], "master": "local[2]"})`` or
``SparkSubmitTask("t", app="job.py", ...)``.  The job runs under ``spark-submit`` in a session of its
own, watched by a small keeper process (``python -m aiflow_nb.operators.spark KEEPER_DIR -- CMD...``)
that records its exit code and last error line in ``KEEPER_DIR/exit.json``.  So a new runner can find
the job again after the old one (or the service) died, and a stop is Spark's own: SIGTERM to the
driver, whose shutdown hook stops the SparkContext and its streaming queries; SIGKILL only if it has
not ended after ``stop_timeout`` seconds.  Needs ``pip install 'aiflow-nb[spark]'`` and Java 17.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiflow_nb.errors import SpecError
from aiflow_nb.executors import process
from aiflow_nb.operators.base import Field, Handle, JobFailed, JobStatus, Operator, OperatorContext
from aiflow_nb.workflow.tasks import OperatorTask

EXIT_FILE = "exit.json"
DEFAULT_CONF = {"spark.ui.enabled": "false", "spark.log.level": "WARN"}


def spark_submit() -> str:
    """The ``spark-submit`` of the installed pyspark."""
    import pyspark

    found = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    return str(found) if found.exists() else (shutil.which("spark-submit") or "spark-submit")


class SparkOperator(Operator):
    name = "spark"
    extra = "spark"
    requires = ("pyspark",)
    poll_interval = 0.25
    fields = {
        "app": Field(str, required=True, doc="the PySpark application (a .py file)"),
        "args": Field((list, str), default=[], doc="its arguments: strings, or one string split like a shell's"),
        "master": Field(str, default="local[2]", doc="the Spark master (local mode by default)"),
        "conf": Field(dict, default={}, doc="--conf settings of spark-submit"),
        "cwd": Field(str, doc="where the job runs (default: the run folder)"),
        "stop_timeout": Field((int, float), default=30, doc="seconds a stopped job has to end before SIGKILL"),
    }

    @classmethod
    def check(cls, task: str, params: dict[str, Any]) -> None:
        if isinstance(params["args"], str):
            try:
                shlex.split(params["args"])
            except ValueError as exc:
                raise SpecError(f"task {task!r}: 'args' of operator 'spark' cannot be split: {exc}") from None
        elif not all(isinstance(a, str) for a in params["args"]):
            raise SpecError(f"task {task!r}: 'args' of operator 'spark' must be a list of strings")
        if not all(isinstance(v, (str, int, float)) for v in params["conf"].values()):
            raise SpecError(f"task {task!r}: 'conf' of operator 'spark' maps names to strings or numbers")
        if params["stop_timeout"] <= 0:
            raise SpecError(f"task {task!r}: 'stop_timeout' must be positive")

    def start(self, context: OperatorContext) -> Handle:
        p = context.params
        app = Path(p["app"])
        cwd = Path(p["cwd"]) if p.get("cwd") else context.run_dir
        if not (app if app.is_absolute() else cwd / app).is_file():
            raise JobFailed(f"the Spark application {p['app']!r} does not exist")
        keeper_dir = context.run_dir / "spark"
        keeper_dir.mkdir(exist_ok=True)
        command = [spark_submit(), "--master", p["master"]]
        # No web UI (a port per job) and warnings only in the run's log, unless the task says otherwise.
        for key, value in {**DEFAULT_CONF, **p["conf"]}.items():
            command += ["--conf", f"{key}={value}"]
        args = shlex.split(p["args"]) if isinstance(p["args"], str) else p["args"]
        command += [str(app), *args]
        env = {**os.environ, **context.environment, "PYSPARK_PYTHON": sys.executable}
        with context.log_path.open("ab") as log:
            keeper = subprocess.Popen(
                [sys.executable, "-m", "aiflow_nb.operators.spark", str(keeper_dir), "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,  # outlives its runner; stopped by its own stop
            )
        context.log(f"spark job started (keeper pid {keeper.pid}, master {p['master']})")
        return {
            "pid": keeper.pid,
            "started": process.start_time(keeper.pid),
            "dir": str(keeper_dir),
            "stop_timeout": p["stop_timeout"],
        }

    def poll(self, handle: Handle) -> JobStatus:
        ended = _exit(handle)
        if ended is not None:
            if ended["code"] == 0 or ended.get("stopped"):
                return JobStatus.success()
            return JobStatus.failed(ended.get("error") or f"spark-submit exited with code {ended['code']}")
        if process.alive(handle["pid"], handle.get("started")):
            return JobStatus.running()
        return JobStatus.failed("the Spark job's keeper died without recording how the job ended")

    def stop(self, handle: Handle) -> None:
        process.signal(handle["pid"], signal.SIGTERM, group=False)  # the keeper passes it to the driver
        deadline = time.monotonic() + float(handle.get("stop_timeout") or 30)
        while process.alive(handle["pid"], handle.get("started")) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.signal(handle["pid"], signal.SIGKILL, group=True)

    def reattach(self, handle: Handle) -> bool:
        return process.alive(handle["pid"], handle.get("started")) or _exit(handle) is not None


def _exit(handle: Handle) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(handle["dir"]) / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class SparkSubmitTask(OperatorTask):
    """``SparkSubmitTask("t", app="job.py", args=[...])``: a task of the ``spark`` operator."""

    operator_name = "spark"

    def __init__(
        self,
        name: str,
        *,
        app: str,
        args: list[str] | None = None,
        master: str = "local[2]",
        conf: dict[str, Any] | None = None,
        cwd: str | None = None,
        stop_timeout: float = 30,
        **common: Any,
    ) -> None:
        params: dict[str, Any] = {"app": app, "args": list(args or []), "master": master, "conf": dict(conf or {})}
        params.update({"cwd": cwd, "stop_timeout": stop_timeout})
        super().__init__(name, params=params, **common)


#: The last line of a Python traceback (``pyspark.errors...AnalysisException: [...] ...``).
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


def _error_line(lines: list[str]) -> str | None:
    """The job's error: the last exception line of a traceback, else the last ERROR log line, else the last line."""
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line.strip()
    for line in reversed(lines):
        if " ERROR " in line:
            return line.strip()
    return lines[-1].strip() if lines else None


def keep(folder: Path, command: list[str]) -> int:
    """Run ``command`` (the driver), pass SIGTERM on, record its exit and last error line in ``exit.json``."""
    stopped = False
    # The driver's output, the Python traceback too (Spark passes it through the JVM's stdout).
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def forward(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True
        child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    tail: list[str] = []
    assert child.stdout is not None
    for raw in child.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        tail = [*tail[-200:], line] if line.strip() else tail
    code = child.wait()
    error = None if code == 0 or stopped else _error_line(tail)
    tmp = folder / (EXIT_FILE + ".tmp")
    tmp.write_text(json.dumps({"code": code, "stopped": stopped, "error": error}))
    os.replace(tmp, folder / EXIT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(keep(Path(sys.argv[1]), sys.argv[3:]))
