"""The run folder ``<home>/runs/<id>/<attempt>``: its files, and how a run claims it, reports its end in it
and is handed over to a new runner.

The executor writes ``task.json`` (the launch request) and, to stop the run, ``stop``; the runner claims
the folder (``claim``, created once), beats (``heartbeat``), keeps its operator's handle (``handle.json``)
and writes ``result.json`` last, atomically.  Whoever sees ``result.json`` knows how the run ended.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from aiflow_nb.errors import no_space
from aiflow_nb.executors import process
from aiflow_nb.executors.process import identity
from aiflow_nb.home import open_private
from aiflow_nb.operators.base import JobFailed

#: File names in the run folder (the executor writes STOP_FILE, the runner HEARTBEAT_FILE).
HEARTBEAT_FILE = "heartbeat"
STOP_FILE = "stop"
#: The operator's handle of the run's job (JSON), written as soon as the job started.
HANDLE_FILE = "handle.json"
#: A FIFO in the home (beside ``runs/``): a runner writes a line to it once its result is written.
ENDED_FIFO = ".runs-ended"


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
    """Write ``data`` to ``path`` whole or not at all, the file owner-only (0600) from the start."""
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as out:
        out.write(json.dumps(data))
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


def run_home(run_dir: Path) -> Path:
    """The home of a run folder ``<home>/runs/<id>/<attempt>`` (``AIFLOW_NB_HOME`` where it is set)."""
    home = os.environ.get("AIFLOW_NB_HOME")
    return Path(home) if home else run_dir.parent.parent.parent


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
