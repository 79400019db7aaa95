"""What a Dask worker runs for one task execution: :func:`run`.

The task runs exactly as with the ``local`` executor, in a runner process
(``python -m aiflow_nb.executors.runner``) of its own session, in a run
folder under the worker's local directory; its log, executed notebook and
result go back to the service as the future's result.

Three marks on the Dask scheduler (:class:`RunState`), named after the
future's key, make a run happen once whatever the cluster or the service do:

- ``<key>/claim``: set (to the worker's address) before the task starts.  A
  future that finds it set is a second run of the key: Dask reruns the
  tasks of a lost worker, and the service submits again after a restart.
  It does not run the task; it reports the first run lost.
- ``<key>/result``: the payload, set before returning it, so a service that
  was down when the run ended still gets it (its resubmitted future returns
  this instead of running).
- ``<key>/stop``: the grace period in seconds, set by the service to stop the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from aiflow_nb.executors import process
from aiflow_nb.executors.base import run_dir
from aiflow_nb.executors.heartbeat import Silence
from aiflow_nb.executors.run_folder import STOP_FILE, job_alive, kill_job, task_environment, write_json
from aiflow_nb.executors.runner import start_runner, stops_gently
from aiflow_nb.home import make_private_folder

#: Seconds between two looks at the stop mark (each one a long poll on the scheduler).
STOP_POLL = 0.5


def task_key(home: str, task_execution_id: int, attempt: int) -> str:
    """The Dask key of a run: one future per (home, task execution, attempt), ever."""
    return f"aiflow-nb-{home}-{task_execution_id}-{attempt}"


class RunState:
    """The run's marks on the Dask scheduler (see the module doc).

    Each is a Variable holding the value and an Event flagging that it is
    set: a Variable alone cannot be read without waiting (and the scheduler
    logs each timed-out read as an error).
    """

    MARKS = ("claim", "result", "stop")

    def __init__(self, key: str, client: Any = None) -> None:
        from distributed import Event, Variable

        self._event = {m: Event(f"{key}/{m}", client=client) for m in self.MARKS}
        self._value = {m: Variable(f"{key}/{m}", client=client) for m in self.MARKS}

    def get(self, mark: str) -> Any:
        """The mark's value, or None if it is not set."""
        return self._value[mark].get() if self._event[mark].is_set() else None

    def wait(self, mark: str, timeout: float) -> Any:
        """The mark's value once it is set, or None after ``timeout`` s."""
        return self._value[mark].get() if self._event[mark].wait(timeout) else None

    def put(self, mark: str, value: Any) -> None:
        self._value[mark].set(value)
        self._event[mark].set()  # after the value: whoever sees the flag finds the value

    def forget(self) -> None:
        for mark in self.MARKS:
            self._event[mark].clear()
            self._value[mark].delete()


def payload(status: str, error: str | None, log: str = "", notebook: str | None = None) -> dict[str, Any]:
    return {"status": status, "error": error, "log": log, "notebook": notebook}


#: How a run may end, as its result says.
RESULT_STATUSES = frozenset({"SUCCESS", "FAILED", "STOPPED"})


def encode_result(outcome: dict[str, Any]) -> str:
    """A run's result as it travels back to the service: JSON text, never a pickle."""
    return json.dumps(outcome)


def decode_result(text: object) -> dict[str, Any]:
    """The result :func:`encode_result` made; ValueError for anything else (it came over the network)."""
    if not isinstance(text, str):
        raise ValueError(f"a {type(text).__name__}, not JSON text")
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("status") not in RESULT_STATUSES:
        raise ValueError("not an object with a status of SUCCESS, FAILED or STOPPED")
    error, log, notebook = data.get("error"), data.get("log", ""), data.get("notebook")
    if not (error is None or isinstance(error, str)) or not isinstance(log, str):
        raise ValueError("error or log is not text")
    if not (notebook is None or isinstance(notebook, str)):
        raise ValueError("notebook is not text")
    return payload(data["status"], error, log, notebook)


class Hidden:
    """A text (the task token) that Dask carries to the worker without showing it.

    Its repr is a placeholder, so the scheduler's task details and a worker's
    error log of a failed call do not print it.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return "Hidden('[redacted]')"


def run(request: dict[str, Any], service: dict[str, Any] | None, home: str) -> str:
    """Run ``request`` once on this worker; ``service`` holds the URL and token tasks send events with.

    ``home`` is the id of the service's home (:func:`aiflow_nb.home.home_id`): the run's marks
    and folder carry it, so the runs of two homes sharing the cluster never meet.

    The result (:func:`encode_result`) is set as the run's ``result`` mark, which the service
    reads; it is also returned, but the service never asks Dask for the future's value.
    """
    from distributed import get_worker

    state = RunState(task_key(home, request["task_execution_id"], request["attempt"]))
    done = state.get("result")
    if done is not None:
        return str(done)  # ran already; this is the service asking again after a restart
    if state.get("stop") is not None:
        stopped = encode_result(payload("STOPPED", None))  # stopped before it started
        state.put("result", stopped)
        return stopped
    first = state.get("claim")
    if first is not None:
        lost = encode_result(payload("FAILED", f"the Dask worker running it ({first}) was lost"))
        state.put("result", lost)
        return lost
    worker = get_worker()
    state.put("claim", worker.address)
    folder = run_dir(
        Path(worker.local_directory) / "aiflow-nb" / home, request["task_execution_id"], request["attempt"]
    )
    make_private_folder(folder)
    try:
        outcome = encode_result(_run_in(folder, request, service, state))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    state.put("result", outcome)
    return outcome


def _run_in(folder: Path, request: dict[str, Any], service: dict[str, Any] | None, state: RunState) -> dict[str, Any]:
    write_json(folder / "task.json", request)
    env = {**os.environ, **task_environment(request), "AIFLOW_NB_RUN_DIR": str(folder)}
    # The runner ends itself (and its kernel) if this worker process dies.
    env["AIFLOW_NB_PARENT_PID"] = str(os.getpid())
    env.pop("AIFLOW_NB_HOME", None)  # the service's home is not on this machine
    if service is not None:
        token = service["token"]
        env["AIFLOW_NB_URL"], env["AIFLOW_NB_TOKEN"] = (
            service["url"],
            token.text if isinstance(token, Hidden) else token,
        )
    popen = start_runner(folder, env)
    watch = _Watch(state, popen, folder, request)
    popen.wait()  # blocking: the result is read the moment the runner ends (the watch then ends on its own)
    stop_deadline, lost = watch.deadline, watch.lost
    if stop_deadline is not None:
        # An operator's job leads a session of its own and may outlive its runner (one that died
        # while stopping it): it has what is left of the grace, then its group is killed.
        while job_alive(folder) and time.monotonic() < stop_deadline:
            time.sleep(0.1)
        kill_job(folder)
        process.kill_tree(popen.pid)  # what outlived the runner (a bash command, a kernel)
    elif not (folder / "result.json").exists():
        kill_job(folder)  # its runner died: nothing on this worker watches the job again
    log = (folder / "log.txt").read_text(errors="replace")
    notebook_path = folder / "output.ipynb"
    notebook = notebook_path.read_text() if notebook_path.exists() else None
    if lost is not None:
        return payload("FAILED", lost, log, notebook)
    try:
        result = json.loads((folder / "result.json").read_text())
        return payload(result["status"], result.get("error"), log, notebook)
    except (OSError, ValueError, KeyError):
        pass
    if stop_deadline is not None:
        return payload("STOPPED", None, log, notebook)
    code = popen.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return payload("FAILED", f"the task process {why} without a result", log, notebook)


class _Watch:
    """Watches a run from a thread: its stop mark, its stop deadline and its heartbeat, as ``local`` does."""

    def __init__(self, state: RunState, popen: subprocess.Popen[bytes], folder: Path, request: dict[str, Any]) -> None:
        self.state, self.popen, self.folder, self.request = state, popen, folder, request
        #: When the run is killed if it has not ended (set once a stop came).
        self.deadline: float | None = None
        #: Why the run was killed for want of a heartbeat.
        self.lost: str | None = None
        threading.Thread(target=self._watch, name="aiflow-nb-watch", daemon=True).start()

    def _watch(self) -> None:
        pid, timeout = self.popen.pid, self.request.get("heartbeat_timeout")
        silence = Silence(self.folder)
        while self.popen.returncode is None:
            if self.deadline is not None:
                if time.monotonic() > self.deadline:
                    process.kill_tree(pid)  # its group, and a kernel's (a session of its own)
                    kill_job(self.folder)  # an operator's job, even once it is no longer below the runner
                time.sleep(0.1)
                continue
            grace = self.state.wait("stop", STOP_POLL)
            if self.popen.returncode is not None:
                return
            if grace is not None:
                (self.folder / STOP_FILE).touch()
                self.deadline = time.monotonic() + float(grace)
                process.signal(pid, signal.SIGTERM, group=not stops_gently(self.request["task"]))
                continue
            silent = silence()
            if timeout and self.lost is None and silent is not None and silent > float(timeout):
                self.lost = f"no heartbeat for {silent:.0f} s (timeout {float(timeout):g} s): the task process hung"
                process.kill_tree(pid)
