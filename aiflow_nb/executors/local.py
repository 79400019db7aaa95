"""LocalExecutor: each task execution in its own process on this machine."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiflow_nb.executors import process
from aiflow_nb.executors.base import Executor, LaunchRequest, run_dir
from aiflow_nb.executors.heartbeat import Silence
from aiflow_nb.executors.run_folder import (
    ENDED_FIFO,
    STOP_FILE,
    can_reattach,
    claim,
    job_alive,
    kill_job,
    task_environment,
    write_json,
)
from aiflow_nb.executors.runner import start_runner, stops_gently
from aiflow_nb.home import make_private_folder
from aiflow_nb.workflow.records import Outcome
from aiflow_nb.workflow.status import TaskStatus

log = logging.getLogger("aiflow_nb.executors.local")

#: How long a recovered run may take to claim its folder before it is lost.
CLAIM_GRACE = 5.0


@dataclass
class _Run:
    task_execution_id: int
    attempt: int
    dir: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    started: str | None = None
    since: float = 0.0
    stop_deadline: float | None = None
    killed: bool = False
    #: Seconds without a heartbeat after which the run is killed and FAILED.
    heartbeat_timeout: float | None = None
    #: A stop signals the runner alone (runner.stops_gently).
    gentle_stop: bool = False
    #: Why the run was killed for want of a heartbeat.
    lost: str | None = None
    #: How long its heartbeat has not changed (made at the first look).
    silence: Silence | None = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _configure(run: _Run, request: LaunchRequest) -> None:
    timeout = request.get("heartbeat_timeout")
    run.heartbeat_timeout = float(timeout) if timeout else None
    run.gentle_stop = stops_gently(request.get("task") or {})


def _reap(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.wait()


class _EndedListener:
    """Reads the runners' FIFO (``runner.announce_end``) in a thread and calls ``wake``.

    Without it a finished run is noticed at the engine's next tick; with it,
    at once.
    """

    def __init__(self, path: Path, wake: Callable[[], None]) -> None:
        make_private_folder(path.parent)
        if not path.exists():
            os.mkfifo(path, 0o600)
        # Read and write: opening never blocks, and the FIFO never reads EOF.
        self._fd = os.open(path, os.O_RDWR)
        self._closing = False
        self._thread = threading.Thread(target=self._listen, args=(wake,), name="aiflow-nb-ended", daemon=True)
        self._thread.start()

    def _listen(self, wake: Callable[[], None]) -> None:
        while True:
            try:
                os.read(self._fd, 4096)
            except OSError:
                return
            if self._closing:
                return
            wake()

    def close(self) -> None:
        self._closing = True
        os.write(self._fd, b"\n")
        self._thread.join()
        os.close(self._fd)


class LocalExecutor(Executor):
    """Runs ``python -m aiflow_nb.executors.runner`` per task execution.

    Each run is the leader of its own session, so a stop reaches the whole
    process group and the run survives a crash of the engine (it is
    re-attached on restart).
    """

    name = "local"

    def __init__(self, home: Path, *, python: str = sys.executable, **options: Any) -> None:
        super().__init__(home, **options)
        self.python = python
        self.runs: dict[int, _Run] = {}
        self._ended = _EndedListener(self.home / ENDED_FIFO, lambda: self.wake())

    def active(self) -> int:
        return len(self.runs)

    def launch(self, request: LaunchRequest) -> None:
        te_id, attempt = request["task_execution_id"], request["attempt"]
        watched = self.runs.get(te_id)
        if watched is not None and watched.attempt == attempt:
            return  # launched (or re-attached) already: never start it twice
        folder = run_dir(self.home, te_id, attempt)
        make_private_folder(folder)
        if (folder / "claim").exists():
            self.recover(te_id, attempt)
            return
        write_json(folder / "task.json", request)
        popen = start_runner(folder, self._env(request, folder), self.python)
        run = _Run(te_id, attempt, folder, popen=popen, pid=popen.pid, since=time.monotonic())
        _configure(run, request)
        self.runs[te_id] = run
        log.info("launched task execution %s attempt %s as pid %s", te_id, attempt, popen.pid)

    def recover(self, task_execution_id: int, attempt: int) -> None:
        folder = run_dir(self.home, task_execution_id, attempt)
        run = _Run(task_execution_id, attempt, folder, since=time.monotonic())
        request = None
        try:
            request = json.loads((folder / "task.json").read_text())
            _configure(run, request)
        except (OSError, ValueError):
            pass  # never launched here: the claim check reports it lost
        # Its runner died, but its operator's job may live: a new runner watches it.
        claimed = self._read_claim(run) and request is not None
        if claimed and not process.alive(run.pid, run.started) and can_reattach(folder):  # type: ignore[arg-type]
            assert request is not None
            run.popen = start_runner(folder, self._env(request, folder), self.python, reattach=True)
            run.pid, run.started = run.popen.pid, None
            log.info("task execution %s: re-attaching its job (runner pid %s)", task_execution_id, run.pid)
        self.runs[task_execution_id] = run
        log.info("watching task execution %s again (pid %s)", task_execution_id, run.pid)

    def stop(self, task_execution_id: int, grace: float) -> None:
        run = self.runs.get(task_execution_id)
        if run is None or run.stop_deadline is not None:
            return
        run.stop_deadline = time.monotonic() + grace
        try:
            (run.dir / STOP_FILE).touch()
        except OSError:
            pass
        self._signal(run, signal.SIGTERM, group=not run.gentle_stop)

    def poll(self) -> list[Outcome]:
        ended = []
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.stop_deadline is not None and now > run.stop_deadline and not run.killed:
                run.killed = True
                self._kill(run)
                kill_job(run.dir)  # an operator's job in a session of its own goes with its runner
            if self._running(run, now) and not self._lost_heartbeat(run):
                continue
            del self.runs[run.task_execution_id]
            if run.popen is not None and run.popen.poll() is None:  # just killed: reap it when it is gone
                threading.Thread(target=_reap, args=([run.popen],), name="aiflow-nb-reaper", daemon=True).start()
            if not (run.dir / "result.json").exists():
                kill_job(run.dir)  # its runner died: nothing watches an operator's job again once its run ends
            ended.append(self._outcome(run))
        return ended

    def close(self) -> None:
        self._ended.close()
        # Kill nothing: the tasks live on and a later engine re-attaches them.
        # Our own children are still reaped when they end, so none is left a zombie.
        children = [run.popen for run in self.runs.values() if run.popen is not None]
        if children:
            threading.Thread(target=_reap, args=(children,), name="aiflow-nb-reaper", daemon=True).start()
        self.runs.clear()

    # -- helpers -------------------------------------------------------------

    def _env(self, request: LaunchRequest, folder: Path) -> dict[str, str]:
        return {
            **os.environ,
            **task_environment(request),
            "AIFLOW_NB_HOME": str(self.home),
            "AIFLOW_NB_RUN_DIR": str(folder),
        }

    def _read_claim(self, run: _Run) -> bool:
        try:
            parsed = process.parse_identity((run.dir / "claim").read_text())
        except OSError:
            return False
        if parsed is None:
            return False
        run.pid, run.started = parsed
        return True

    def _running(self, run: _Run, now: float) -> bool:
        if self._runner_running(run, now):
            return True
        if run.popen is not None:
            # Reap our runner if it has exited: as a zombie it keeps its group "alive",
            # and a stop would last the whole grace period.
            run.popen.poll()
        # A stopped run ends when its whole process group has: a command that
        # outlives its runner is SIGKILLed with the group after the grace period.
        # So does an operator's job (a session of its own) whose runner died while stopping it.
        if run.stop_deadline is None or run.killed:
            return False
        return (run.pid is not None and _group_alive(run.pid)) or job_alive(run.dir)

    def _runner_running(self, run: _Run, now: float) -> bool:
        if (run.dir / "result.json").exists():
            # Written last and atomically: the outcome is final even while the
            # runner still shuts down (a kernel, the interpreter).
            return False
        if run.popen is not None:
            if run.popen.poll() is None:
                return True
            # Our runner may have found the run claimed by an earlier one.
            pid = run.popen.pid
            if self._read_claim(run) and run.pid != pid and process.alive(run.pid, run.started):  # type: ignore[arg-type]
                run.popen = None
                return True
            return False
        if run.pid is None and not self._read_claim(run):
            if now - run.since < CLAIM_GRACE:
                return True
            # Claim it ourselves, so that a runner starting this late can never
            # run a task we report lost (and may retry: it would run twice).
            if not claim(run.dir, "lost: never claimed by a runner\n") and self._read_claim(run):
                return process.alive(run.pid, run.started)  # type: ignore[arg-type]
            return False
        return process.alive(run.pid, run.started)  # type: ignore[arg-type]

    def _lost_heartbeat(self, run: _Run) -> bool:
        """Kill a run that stopped beating (frozen, or hung holding the GIL); True if so."""
        if run.heartbeat_timeout is None or run.stop_deadline is not None or run.pid is None:
            return False
        if run.silence is None:
            run.silence = Silence(run.dir)
        silent = run.silence()
        if silent is None or silent <= run.heartbeat_timeout:
            return False
        run.lost = f"no heartbeat for {silent:.0f} s (timeout {run.heartbeat_timeout:g} s): the task process hung"
        log.warning("task execution %s: %s; killing it", run.task_execution_id, run.lost)
        self._kill(run)
        return True

    def _kill(self, run: _Run) -> None:
        """SIGKILL the run's process group and those of its descendants (a kernel leads its own)."""
        if run.pid is not None:
            process.kill_tree(run.pid)

    def _signal(self, run: _Run, signum: int, group: bool = True) -> None:
        if run.pid is not None:
            process.signal(run.pid, signum, group)

    def _outcome(self, run: _Run) -> Outcome:
        te, attempt = run.task_execution_id, run.attempt
        try:
            result = json.loads((run.dir / "result.json").read_text())
        except (OSError, ValueError):
            result = None
        if run.lost is not None:
            return Outcome(te, attempt, TaskStatus.FAILED, run.lost)
        if result is not None:
            return Outcome(te, attempt, TaskStatus(result["status"]), result.get("error"))
        if run.stop_deadline is not None:
            return Outcome(te, attempt, TaskStatus.STOPPED)
        if run.popen is not None and run.popen.returncode is not None:
            code = run.popen.returncode
            why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return Outcome(te, attempt, TaskStatus.FAILED, f"the task process {why} without a result")
        return Outcome(te, attempt, TaskStatus.FAILED, "the task process was lost")
