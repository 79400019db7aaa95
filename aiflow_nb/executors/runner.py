"""Run one task execution in this process: ``python -m aiflow_nb.executors.runner DIR``.

``DIR`` holds ``task.json`` (the launch request).  The runner first creates
``DIR/claim`` exclusively, so a run started twice (after a crash at the
wrong moment) still runs once, then runs the task and writes
``DIR/result.json`` atomically.  stdout and stderr go to ``DIR/log.txt``.

``python -m aiflow_nb.executors.runner --warm [KERNEL]`` is a spare of the
``kernel-pool`` executor: it imports what a task needs and starts a kernel
(named ``KERNEL``) ahead of time, then reads one run folder from stdin and
is from then on that run's runner, exactly as above, on its warm kernel.
It runs one task and exits, so nothing is shared between two task runs.

While the task runs, a thread touches ``DIR/heartbeat`` every
``heartbeat_interval`` seconds, so the executor can tell a frozen or vanished
run from a slow one.  A stop creates ``DIR/stop`` first: a streaming task
that checks :func:`aiflow_nb.stop_requested` finishes its step and ends.

The run folder's files are :mod:`.run_folder`'s, the heartbeat :mod:`.heartbeat`'s, and the built-in
kinds' work (papermill, a callable, a command) is in :mod:`.runners`; this module starts the runner,
hands the task to its operator and records how it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiflow_nb.executors.heartbeat import Silence, start_heartbeat, watch_parent
from aiflow_nb.executors.redaction import redact_output, redact_text, task_secrets
from aiflow_nb.executors.run_folder import (
    ENDED_FIFO,
    HANDLE_FILE,
    HEARTBEAT_FILE,
    STOP_FILE,
    announce_end,
    can_reattach,
    claim,
    failure,
    job_alive,
    kill_job,
    reserve_result_room,
    run_home,
    take_over,
    task_environment,
    write_json,
    write_result,
)
from aiflow_nb.executors.runners import TaskFailed
from aiflow_nb.executors.runners.notebook import notebook_kernel
from aiflow_nb.home import OWNER_ONLY_UMASK, open_private
from aiflow_nb.operators.base import JobFailed, JobState, Operator, OperatorContext
from aiflow_nb.operators.registry import operator_class
from aiflow_nb.startup import skip_slow_optional_imports

if TYPE_CHECKING:
    from aiflow_nb.executors.warm_kernel import WarmKernel

#: Exit code of a runner that found the run already claimed.
ALREADY_CLAIMED = 0
#: A spare creates this file in the home once it is ready (kernel-pool then prefers it to a fork).
SPARE_READY = "spares/{pid}.ready"


def stop_requested() -> bool:
    """True once aiflow-nb asked the running task to stop.

    A streaming task checks it between steps, so a STOP or RESTART lets the
    current step finish (the run is killed after the grace period anyway)::

        while not stop_requested():
            process(next_batch())
    """
    folder = os.environ.get("AIFLOW_NB_RUN_DIR")
    return folder is not None and os.path.exists(os.path.join(folder, STOP_FILE))


def start_runner(
    run_dir: Path, env: dict[str, str], python: str = sys.executable, reattach: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``python -m aiflow_nb.executors.runner run_dir``, its output to ``run_dir/log.txt``.

    It leads a session of its own, so a stop reaches its whole group (a
    command, a kernel) and it outlives the process that started it.
    ``reattach``: take over the claimed run of a runner that died and watch its
    job again (:func:`can_reattach`).
    """
    # A stop while a re-attaching runner starts must not kill it before it can stop the job: it starts
    # with SIGTERM blocked (a blocked signal waits across exec) and takes it once its handler is set.
    # Not a preexec_fn: running Python code in the child of a fork of the threaded service (DuckDB's,
    # tornado's threads) can deadlock it before exec, and this thread, waiting for the exec, with it.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM} if reattach else set())
    try:
        with os.fdopen(open_private(run_dir / "log.txt"), "ab") as out:
            return subprocess.Popen(
                [python, "-m", "aiflow_nb.executors.runner", *(["--reattach"] if reattach else []), str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=run_dir,
                env=env,
                start_new_session=True,
            )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


#: Set by SIGTERM in the runner of an operator's job that is not its own work: the operator stops it.
_STOP = threading.Event()


def _operator(kind: str) -> type[Operator] | None:
    """The operator of a task kind; None for a kind of the older ``aiflow_nb.task_kinds`` group."""
    try:
        return operator_class(kind)
    except Exception:
        return None


def operator_context(request: dict[str, Any], run_dir: Path, kernel: WarmKernel | None = None) -> OperatorContext:
    task = request["task"]
    return OperatorContext(
        task=task["name"],
        params=dict(task.get("params") or {}),
        run_dir=run_dir,
        event=request.get("event"),
        environment={**task_environment(request), "AIFLOW_NB_RUN_DIR": str(run_dir)},
        streaming=bool(task.get("streaming")),
        request=request,
        stop_event=_STOP,
        kernel=kernel,
    )


def run_task(request: dict[str, Any], run_dir: Path, kernel: WarmKernel | None = None, reattach: bool = False) -> None:
    """Start the task's job through its operator (or find it again), wait for its end; TaskFailed if it failed."""
    kind = request["task"]["kind"]
    cls = _operator(kind)
    if cls is None:
        from aiflow_nb.workflow.task_spec import task_kinds

        legacy: Any = task_kinds().get(kind)
        if legacy is None or not hasattr(legacy, "run"):
            operator_class(kind)  # raises, naming the known operators
            raise TaskFailed(f"no runner for task kind {kind!r}")
        legacy.run(request, run_dir)
        return
    operator = cls()
    context = operator_context(request, run_dir, kernel)
    if reattach:
        handle = json.loads((run_dir / HANDLE_FILE).read_text())
        if not operator.reattach(handle):
            raise TaskFailed(f"the {kind} job was lost with its runner")
        context.log(f"watching the {kind} job again")
    else:
        handle = operator.start(context)
        if not cls.in_process:  # an in-process job ends with its runner: nothing to find again
            write_json(run_dir / HANDLE_FILE, handle)
    status = operator.wait(handle, context)
    if status.state is JobState.FAILED:
        raise TaskFailed(status.error or f"the {kind} job failed")


def stops_gently(task: dict[str, Any]) -> bool:
    """A streaming notebook or Python task: a stop signals the runner alone and the
    task's code ends its step (stop_requested()); anything else is stopped at once."""
    return bool(task.get("streaming")) and task.get("kind") in ("notebook", "python")


def _terminate(signum: int, frame: object) -> None:
    # Unwind normally so papermill shuts the kernel down.
    raise SystemExit(128 + signum)


def main(argv: list[str], kernel: WarmKernel | None = None) -> int:
    skip_slow_optional_imports()
    os.umask(OWNER_ONLY_UMASK)  # the run's files (log, notebooks, result) are the user's alone, wherever it runs
    if argv and argv[0] == "--warm":
        return warm_main(argv[1] if len(argv) > 1 else None)
    reattach = bool(argv) and argv[0] == "--reattach"
    run_dir = Path(argv[-1])
    if reattach:
        if not can_reattach(run_dir):
            return ALREADY_CLAIMED
        take_over(run_dir)
    elif not claim(run_dir):
        return ALREADY_CLAIMED
    reserve_result_room(run_dir)
    request = json.loads((run_dir / "task.json").read_text())
    cls = _operator(request["task"]["kind"])
    if cls is not None and not cls.in_process:
        # The operator stops its job (its own stop command); the runner then records how it ended.
        signal.signal(signal.SIGTERM, lambda signum, frame: _STOP.set())
    elif stops_gently(request["task"]):
        # The executor signals only this process: the task's code sees stop_requested()
        # and ends its step; the executor kills the whole group after the grace period.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    else:
        signal.signal(signal.SIGTERM, _terminate)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a re-attaching runner's (start_runner)
    os.environ.update(task_environment(request))
    watch_parent()
    start_heartbeat(run_dir, float(request.get("heartbeat_interval") or 5.0))
    # From here on, what the run prints (its commands and kernel too) reaches log.txt with tokens redacted.
    secrets = task_secrets(os.environ, run_home(run_dir))
    end_redaction = redact_output(secrets)
    result: dict[str, str | None]
    try:
        try:
            run_task(request, run_dir, kernel, reattach)
        except JobFailed as exc:
            print(f"aiflow-nb: task failed: {exc}", file=sys.stderr)
            result, code = {"status": "FAILED", "error": failure(exc, run_dir)}, 1
        except Exception as exc:
            traceback.print_exc()
            result, code = {"status": "FAILED", "error": failure(exc, run_dir)}, 1
        else:
            stopped = (run_dir / STOP_FILE).exists()
            result, code = {"status": "STOPPED" if stopped else "SUCCESS", "error": None}, 0
        end_redaction()  # the log is complete before the result says the run ended
        error = result["error"]
        if error is not None:
            result["error"] = redact_text(error, secrets)
        write_result(run_dir, result)
        return code
    finally:
        end_redaction()
        announce_end(run_dir)


def warm_main(kernel_name: str | None) -> int:
    """A spare runner: get ready, wait for a run folder on stdin, run it (see the module doc)."""
    kernel: WarmKernel | None = None
    if kernel_name:
        from aiflow_nb.executors.warm_kernel import WarmKernel, warm_up_papermill

        try:
            warm_up_papermill()
            kernel = WarmKernel.start(kernel_name)
        except Exception:
            traceback.print_exc()  # the task then starts its own kernel
    with open(SPARE_READY.format(pid=os.getpid()), "w"):  # in the home (our working folder)
        pass
    try:
        line = sys.stdin.readline().strip()
        if not line:
            return 0  # the executor went away, or needs no more spares
        run_dir = Path(line)
        # From here on this process is that run's runner, as if started for it.
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(run_dir / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(run_dir)
        os.environ["AIFLOW_NB_RUN_DIR"] = str(run_dir)
        return main([str(run_dir)], kernel if kernel is not None and kernel.alive() else None)
    finally:
        if kernel is not None:
            try:
                kernel.shut_down()
            except Exception:
                traceback.print_exc()


#: What other modules import from here (the run folder's and heartbeat's names among them).
__all__ = [
    "ALREADY_CLAIMED",
    "ENDED_FIFO",
    "HANDLE_FILE",
    "HEARTBEAT_FILE",
    "SPARE_READY",
    "STOP_FILE",
    "Silence",
    "TaskFailed",
    "can_reattach",
    "claim",
    "job_alive",
    "kill_job",
    "main",
    "notebook_kernel",
    "run_task",
    "start_runner",
    "stop_requested",
    "stops_gently",
    "task_environment",
    "warm_main",
    "write_json",
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
