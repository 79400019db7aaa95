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
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiflow_nb.errors import no_space
from aiflow_nb.executors import process
from aiflow_nb.executors.process import identity
from aiflow_nb.executors.redaction import redact_output, redact_text, task_secrets
from aiflow_nb.home import OWNER_ONLY_UMASK, open_private
from aiflow_nb.operators.base import JobFailed, JobState, Operator, OperatorContext
from aiflow_nb.operators.registry import operator_class
from aiflow_nb.startup import skip_slow_optional_imports

if TYPE_CHECKING:
    from aiflow_nb.executors.warm_kernel import WarmKernel

#: Exit code of a runner that found the run already claimed.
ALREADY_CLAIMED = 0

#: File names in the run folder (the executor writes STOP_FILE, the runner HEARTBEAT_FILE).
HEARTBEAT_FILE = "heartbeat"
STOP_FILE = "stop"
#: The operator's handle of the run's job (JSON), written as soon as the job started.
HANDLE_FILE = "handle.json"
#: A FIFO in the home (beside ``runs/``): a runner writes a line to it once its result is written.
ENDED_FIFO = ".runs-ended"
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


class TaskFailed(JobFailed):
    """The task ran and failed; the message is the error summary."""


def claim(run_dir: Path, text: str | None = None) -> bool:
    """Create ``run_dir/claim`` once; False if someone else did.

    It holds ``text`` (by default this process's identity) from the moment
    it exists (a hard link to a written file), so a reader never finds it
    empty and mistakes a claimed run for a lost one.
    """
    tmp = run_dir / f"claim.{os.getpid()}.tmp"
    tmp.write_text(identity() if text is None else text)
    try:
        os.link(tmp, run_dir / "claim")
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def announce_end(run_dir: Path) -> None:
    """Tell a listening executor that this run has its result (nothing happens if none listens)."""
    try:
        fd = os.open(
            run_dir.parent.parent.parent / ENDED_FIFO, os.O_WRONLY | os.O_NONBLOCK
        )  # <home>/runs/<id>/<attempt>
    except OSError:  # no FIFO, or no engine reading it: it polls on its own
        return
    try:
        os.write(fd, b"\n")
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


#: Room set aside for ``result.json`` as a run starts, so a task that fills the disk can still be reported.
RESULT_ROOM = 16 * 1024


def reserve_result_room(run_dir: Path) -> None:
    """Allocate the blocks ``result.json`` will take (best effort: a full disk leaves it to chance)."""
    fd = open_private(run_dir / "result.json.tmp", os.O_WRONLY | os.O_CREAT)
    try:
        os.posix_fallocate(fd, 0, RESULT_ROOM)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_result(run_dir: Path, result: dict[str, str | None]) -> None:
    """Write ``result.json`` atomically, over the room reserved for it (not truncated first: no new block)."""
    data = json.dumps(result).encode()
    tmp = run_dir / "result.json.tmp"
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    os.replace(tmp, run_dir / "result.json")


def failure(exc: Exception, run_dir: Path) -> str:
    """A failed run's error: a write that found no room says so first (with what could not be written)."""
    why = no_space(exc)
    if why is not None:
        return f"disk full: could not write {getattr(exc, 'filename', None) or 'the task output'} ({why})"
    text = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
    return f"disk full ({run_dir} has no room left): {text}" if disk_full(run_dir) else text


def disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has (next to) no room left for a task's output."""
    try:
        fs = os.statvfs(folder)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < RESULT_ROOM


def task_environment(request: dict[str, Any]) -> dict[str, str]:
    """Environment variables that tell code in the task where it runs."""
    return {
        "AIFLOW_NB_EXECUTION_ID": str(request["execution_id"]),
        "AIFLOW_NB_WORKFLOW": request["workflow"],
        "AIFLOW_NB_NAMESPACE": request["namespace"],
        "AIFLOW_NB_TASK": request["task"]["name"],
        "AIFLOW_NB_SEQ": str(request["seq"]),
        "AIFLOW_NB_TASK_EXECUTION_ID": str(request["task_execution_id"]),
        "AIFLOW_NB_ATTEMPT": str(request["attempt"]),
        "AIFLOW_NB_EVENT": json.dumps(request.get("event")),
    }


def start_runner(
    run_dir: Path, env: dict[str, str], python: str = sys.executable, reattach: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``python -m aiflow_nb.executors.runner run_dir``, its output to ``run_dir/log.txt``.

    It leads a session of its own, so a stop reaches its whole group (a
    command, a kernel) and it outlives the process that started it.
    ``reattach``: take over the claimed run of a runner that died and watch its
    job again (:func:`can_reattach`).
    """
    with os.fdopen(open_private(run_dir / "log.txt"), "ab") as out:
        return subprocess.Popen(
            [python, "-m", "aiflow_nb.executors.runner", *(["--reattach"] if reattach else []), str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            env=env,
            start_new_session=True,
            # A stop while a re-attaching runner starts must not kill it before it can stop the job:
            # it starts deaf to SIGTERM and finds the request in the stop file.
            preexec_fn=_ignore_sigterm if reattach else None,
        )


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def notebook_kernel(task: dict[str, Any]) -> str | None:
    """The kernel a notebook task runs on: its own, else the notebook's, else python3."""
    kernel = task.get("kernel_name")
    if kernel is None and not task["notebook"].get("metadata", {}).get("kernelspec"):
        kernel = "python3"
    if kernel is None:
        name = task["notebook"]["metadata"]["kernelspec"].get("name")
        return str(name) if name else None
    return str(kernel)


def notebook_language(task: dict[str, Any]) -> str | None:
    """The language papermill writes the parameters in, when the notebook does not say it: its kernel's.

    None when the notebook names it (papermill reads it there) or the kernel is not installed (papermill
    then says which kernel is missing).
    """
    metadata = task["notebook"].get("metadata", {})
    if (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get("language"):
        return None
    kernel = notebook_kernel(task)
    if not kernel:
        return None
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return str(KernelSpecManager().get_kernel_spec(kernel).language) or None
    except NoSuchKernel:
        return None


def run_notebook(request: dict[str, Any], run_dir: Path, kernel: WarmKernel | None = None) -> None:
    """papermill runs the notebook; on ``kernel`` (a started :class:`WarmKernel`) if given."""
    import logging

    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from aiflow_nb.executors.warm_kernel import ENGINE, KernelSetupError

    task = request["task"]
    cwd = task.get("cwd")
    cwd = cwd if cwd and os.path.isdir(cwd) else str(run_dir)
    warm: dict[str, Any] = {}
    if kernel is not None:
        # Started before this run existed: give it the run's environment and folder, first,
        # so that the kernel does it while papermill prepares the notebook.
        env = {**task_environment(request), "AIFLOW_NB_RUN_DIR": str(run_dir)}
        kernel.set_up(f"import os as _o; _o.environ.update({env!r}); _o.chdir({cwd!r}); del _o")
        warm = {"engine_name": ENGINE, "warm_kernel": kernel}
    # papermill logs each cell's output (log_output=True): keep it in log.txt.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # The injected aiflow_* parameters are expected not to be declared.
    logging.getLogger("papermill").addFilter(
        lambda r: not r.getMessage().startswith("Passed unknown parameter: aiflow_")
    )
    source = run_dir / "input.ipynb"
    nbformat.write(nbformat.from_dict(task["notebook"]), source)
    parameters = {
        **task.get("parameters", {}),
        "aiflow_event": request.get("event"),
        "aiflow_execution_id": request["execution_id"],
        "aiflow_task_execution_id": request["task_execution_id"],
        "aiflow_seq": request["seq"],
    }
    try:
        papermill.execute_notebook(
            str(source),
            redacting_path(run_dir / "output.ipynb"),
            parameters=parameters,
            kernel_name=notebook_kernel(task),
            language=notebook_language(task),
            cwd=cwd,
            log_output=True,
            progress_bar=False,
            # A graceful kernel shutdown can stall for seconds under parallel load.
            shutdown_kernel="immediate",
            **warm,
        )
    except PapermillExecutionError as exc:
        where = f"cell {exc.exec_count}" if exc.exec_count else "a cell"
        index = source_cell_index(task["notebook"], exc.cell_index)
        raise TaskFailed(f"{where} (index {index}) raised {exc.ename}: {exc.evalue}") from None
    except KernelSetupError as exc:
        raise TaskFailed(str(exc)) from None
    except DeadKernelError:
        raise TaskFailed("the notebook's kernel died (the task's code ended or killed its kernel process)") from None


#: Papermill saves an output path with this prefix through :class:`RedactingHandler`.
REDACTING_SCHEME = "aiflow-nb-redacted://"


class RedactingHandler:
    """A papermill I/O handler: each save of the executed notebook goes to a local file with the tokens
    redacted (papermill saves while the notebook runs, so a streaming task's is never complete)."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    @staticmethod
    def local(path: str) -> str:
        return path[len(REDACTING_SCHEME) :]

    def read(self, path: str) -> str:
        return Path(self.local(path)).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.local(path))

    def write(self, buf: str, path: str) -> None:
        text = redact_text(buf.replace(REDACTING_SCHEME, ""), self.secrets)  # the path in papermill's metadata
        Path(self.local(path)).write_text(text, encoding="utf-8")

    def pretty_path(self, path: str) -> str:
        return self.local(path)


def redacting_path(path: Path) -> str:
    """``path`` as papermill's output path, saved through a :class:`RedactingHandler` of this run's secrets."""
    from papermill.iorw import papermill_io

    papermill_io.register(REDACTING_SCHEME, RedactingHandler(task_secrets(os.environ, run_home(path.parent))))
    return REDACTING_SCHEME + str(path)


def run_home(run_dir: Path) -> Path:
    """The home of a run folder ``<home>/runs/<id>/<attempt>`` (``AIFLOW_NB_HOME`` where it is set)."""
    home = os.environ.get("AIFLOW_NB_HOME")
    return Path(home) if home else run_dir.parent.parent.parent


def source_cell_index(notebook: dict[str, Any], index: int) -> int:
    """Where papermill's failing cell ``index`` is in the task's own notebook.

    papermill counts the parameters cell it injected (after the cell tagged
    "parameters", else first), which the user's notebook does not have.
    """
    tags = [cell.get("metadata", {}).get("tags", []) for cell in notebook.get("cells", [])]
    if any("injected-parameters" in t for t in tags):  # replaced in place
        return index
    injected_at = next((i + 1 for i, t in enumerate(tags) if "parameters" in t), 0)
    return index - 1 if index > injected_at else index


def run_python(request: dict[str, Any], run_dir: Path) -> None:
    task = request["task"]
    module_name, _, func_name = task["callable"].partition(":")
    cwd = task.get("cwd")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    sys.path.insert(0, os.getcwd())
    func: Any = importlib.import_module(module_name)
    for part in func_name.split("."):
        func = getattr(func, part)
    kwargs = dict(task.get("kwargs") or {})
    params = inspect.signature(func).parameters
    if "aiflow_event" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["aiflow_event"] = request.get("event")
    try:
        func(**kwargs)
    except Exception as exc:
        traceback.print_exc()
        raise TaskFailed(f"{type(exc).__name__}: {exc}") from None


def run_bash(request: dict[str, Any], run_dir: Path) -> None:
    task = request["task"]
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    sys.stdout.flush()
    # A stop signals the whole process group, the command too: let it handle
    # SIGTERM (clean up, or ignore it until the executor's SIGKILL) and wait.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    code = subprocess.Popen([shell, "-c", task["command"]], cwd=task.get("cwd") or None).wait()
    if code < 0:
        raise TaskFailed(f"command was killed by signal {-code}")
    if code != 0:
        raise TaskFailed(f"command exited with code {code}")


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
        from aiflow_nb.workflow.tasks import task_kinds

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


def can_reattach(run_dir: Path) -> bool:
    """A run whose runner is gone but whose job may live: it has a handle and no result."""
    return (run_dir / HANDLE_FILE).exists() and not (run_dir / "result.json").exists()


def _job(run_dir: Path) -> tuple[int, str] | None:
    """``(pid, start time)`` of the live job the run's handle names, else None (never a reused pid)."""
    try:
        handle = json.loads((run_dir / HANDLE_FILE).read_text())
        pid, started = handle["pid"], handle.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(pid, int) and isinstance(started, str) and process.alive(pid, started):
        return pid, started
    return None


def job_alive(run_dir: Path) -> bool:
    """Whether the job of the run's handle (in a session of its own) still runs."""
    return _job(run_dir) is not None


def kill_job(run_dir: Path) -> None:
    """SIGKILL the process group of the job whose handle names it (``pid``, ``started``): the end of
    a stop's grace period, when the runner and its group are killed too."""
    job = _job(run_dir)
    if job is not None:
        process.signal(job[0], signal.SIGKILL)


def take_over(run_dir: Path) -> None:
    """Write this process's identity to the claim of a run whose runner died (re-attachment)."""
    tmp = run_dir / f"claim.{os.getpid()}.tmp"
    tmp.write_text(identity())
    os.replace(tmp, run_dir / "claim")


def stops_gently(task: dict[str, Any]) -> bool:
    """A streaming notebook or Python task: a stop signals the runner alone and the
    task's code ends its step (stop_requested()); anything else is stopped at once."""
    return bool(task.get("streaming")) and task.get("kind") in ("notebook", "python")


def _terminate(signum: int, frame: object) -> None:
    # Unwind normally so papermill shuts the kernel down.
    raise SystemExit(128 + signum)


def _beat(path: Path, interval: float, done: threading.Event) -> None:
    while True:
        try:
            path.touch()
        except OSError:
            pass  # a full disk must not kill the task; the executor then sees no heartbeat
        if done.wait(interval):
            return


class Silence:
    """Seconds since the run's heartbeat last changed (before the first, since its claim), as elapsed time.

    The file's time is the wall clock's, which can step; so it is only
    compared with itself: the silence is the monotonic time since it was last
    seen to change, and a clock step is not taken for a hung task. ``None``
    while neither file exists.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._mark: tuple[str, int] | None = None
        self._since = time.monotonic()

    def __call__(self) -> float | None:
        for name in (HEARTBEAT_FILE, "claim"):
            try:
                mark = (name, (self.run_dir / name).stat().st_mtime_ns)
            except OSError:
                continue
            now = time.monotonic()
            if mark != self._mark:
                self._mark, self._since = mark, now
            return now - self._since
        return None


def start_heartbeat(run_dir: Path, interval: float) -> threading.Event:
    """Touch ``run_dir/heartbeat`` every ``interval`` s until the returned event is set."""
    done = threading.Event()
    threading.Thread(
        target=_beat, args=(run_dir / HEARTBEAT_FILE, interval, done), name="aiflow-nb-heartbeat", daemon=True
    ).start()
    return done


def _orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    # Our parent (a Dask worker) died: take the task's whole group, kernel included, with it.
    os.killpg(0, signal.SIGKILL)


def watch_parent() -> None:
    """End this run's process group once the process in ``AIFLOW_NB_PARENT_PID`` is not our parent."""
    parent = os.environ.get("AIFLOW_NB_PARENT_PID")
    if parent and parent.isdigit():
        threading.Thread(target=_orphaned, args=(int(parent),), name="aiflow-nb-parent", daemon=True).start()


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
