"""DaskExecutor: task executions on a Dask cluster.

Each run is one future, keyed by task execution and attempt
(:func:`~aiflow_nb.executors.dask_worker.task_key`), that runs
:func:`aiflow_nb.executors.dask_worker.run` on a worker: the task's runner
process, exactly as locally.  Its log, executed notebook and result come
back as the future's result and are written to the run folder in the home,
so the API serves them as for any run.

Futures are fire-and-forget: a run goes on if the service dies, and the
restarted service submits the same key again, which attaches to the running
future or gets the stored result (see the worker module: a run happens once).

The workers need aiflow-nb installed (the same version) and, to send events,
the service's URL: the service passes it, with a token that may only send
events (docs/deploy.md).

>>> Engine(home, executor="dask", executor_options={"address": "tcp://10.0.0.5:8786"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiflow_nb.errors import ExecutorError
from aiflow_nb.executors import dask_worker
from aiflow_nb.executors.base import Executor, LaunchRequest, run_dir
from aiflow_nb.executors.run_folder import write_json
from aiflow_nb.home import home_id, make_private_folder
from aiflow_nb.workflow.records import Outcome
from aiflow_nb.workflow.status import TaskStatus

log = logging.getLogger("aiflow_nb.executors.dask")

#: Seconds a stopped run may take beyond its grace period before its future is cancelled.
STOP_MARGIN = 5.0


@dataclass
class _Run:
    task_execution_id: int
    attempt: int
    future: Any
    stop_deadline: float | None = None


class DaskExecutor(Executor):
    """Sends each run to the Dask scheduler at ``address`` (else ``AIFLOW_NB_DASK_ADDRESS``)."""

    name = "dask"

    def __init__(
        self,
        home: Path,
        *,
        address: str | None = None,
        connect_timeout: float = 10.0,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(home, **options)
        address = address or os.environ.get("AIFLOW_NB_DASK_ADDRESS")
        if not address:
            raise ExecutorError(
                "dask: no scheduler address (start the service with --dask-address tcp://HOST:8786, "
                "or set AIFLOW_NB_DASK_ADDRESS)"
            )
        try:
            import distributed
        except ImportError:
            raise ExecutorError(
                "the dask executor needs Dask's distributed package: pip install 'aiflow-nb[dask]'"
            ) from None
        self._distributed = distributed
        self.address = address
        try:  # before connecting: a client made with a malformed address hangs on closing
            distributed.comm.addressing.get_address_host_port(address)
        except ValueError as exc:
            raise ExecutorError(f"dask: {address!r} is not a scheduler address like tcp://HOST:8786 ({exc})") from None
        security = dask_security(address, tls_ca, tls_cert, tls_key)
        try:
            self.client = distributed.Client(
                address, timeout=connect_timeout, set_as_default=False, **({"security": security} if security else {})
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(f"dask: cannot reach the Dask scheduler at {address}: {exc}") from None
        self.runs: dict[int, _Run] = {}
        self._ended: queue.SimpleQueue[int] = queue.SimpleQueue()
        #: Runs found already ended in the home, reported at the next poll.
        self._recorded: list[Outcome] = []
        #: Runs of an earlier service process, submitted again at the first poll (when the URL is known).
        self._resubmit: list[LaunchRequest] = []
        #: Stops of those, sent once they are submitted again: te id -> grace.
        self._stop_later: dict[int, float] = {}
        self._service: dict[str, Any] | None = None
        #: Names this home's runs apart from other homes' on a shared cluster.
        self.home_id = home_id(self.home)
        log.info("connected to the Dask scheduler at %s", address)

    def serve_at(self, url: str, token: str) -> None:
        self._service = {"url": url, "token": dask_worker.Hidden(token)}

    def active(self) -> int:
        return len(self.runs) + len(self._resubmit)

    def launch(self, request: LaunchRequest) -> None:
        te_id, attempt = request["task_execution_id"], request["attempt"]
        watched = self.runs.get(te_id)
        if watched is not None and watched.attempt == attempt:
            return
        folder = run_dir(self.home, te_id, attempt)
        make_private_folder(folder)
        if self._record_of(te_id, attempt):
            return
        write_json(folder / "task.json", request)
        self._submit(request)

    def recover(self, task_execution_id: int, attempt: int) -> None:
        if self._record_of(task_execution_id, attempt):
            return
        try:
            request = json.loads((run_dir(self.home, task_execution_id, attempt) / "task.json").read_text())
        except (OSError, ValueError):
            self._recorded.append(Outcome(task_execution_id, attempt, TaskStatus.FAILED, "the run was lost"))
            return
        # The same key: attaches to the future if it is still known, else gets its stored result.
        self._resubmit.append(request)

    def stop(self, task_execution_id: int, grace: float) -> None:
        run = self.runs.get(task_execution_id)
        if run is None and any(r["task_execution_id"] == task_execution_id for r in self._resubmit):
            self._stop_later[task_execution_id] = grace  # a run of the last service, not attached yet
            return
        if run is None or run.stop_deadline is not None:
            return
        run.stop_deadline = time.monotonic() + grace + STOP_MARGIN
        state = self._state(task_execution_id, run.attempt)
        # The worker kills the run's processes (its kernel too) after ``grace``.
        state.put("stop", grace)
        if run.future.status == "pending" and state.get("claim") is None:
            run.future.cancel(force=True)  # not started: it never will be

    def poll(self) -> list[Outcome]:
        outcomes, self._recorded = self._recorded, []
        while self._resubmit:
            request = self._resubmit.pop(0)
            self._submit(request)
            grace = self._stop_later.pop(request["task_execution_id"], None)
            if grace is not None:
                self.stop(request["task_execution_id"], grace)
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.stop_deadline is not None and now > run.stop_deadline and not run.future.done():
                log.warning("task execution %s did not stop in time: cancelling its future", run.task_execution_id)
                run.future.cancel(force=True)
        while True:
            try:
                te_id = self._ended.get_nowait()
            except queue.Empty:
                break
            ended = self.runs.get(te_id)
            if ended is not None and ended.future.done():
                del self.runs[te_id]
                outcomes.append(self._outcome(ended))
        return outcomes

    def close(self) -> None:
        # Cancel nothing: the futures are fire-and-forget, and a later service re-attaches them.
        self.runs.clear()
        self.client.close()

    # -- helpers -------------------------------------------------------------

    def _submit(self, request: LaunchRequest) -> None:
        te_id, attempt = request["task_execution_id"], request["attempt"]
        future = self.client.submit(
            dask_worker.run,
            request,
            self._service,
            self.home_id,
            key=dask_worker.task_key(self.home_id, te_id, attempt),
            pure=False,
        )
        self._distributed.fire_and_forget(future)
        self.runs[te_id] = _Run(te_id, attempt, future)
        future.add_done_callback(lambda _: self._ended_now(te_id))
        log.info("submitted task execution %s attempt %s to %s", te_id, attempt, self.address)

    def _ended_now(self, te_id: int) -> None:
        self._ended.put(te_id)
        self.wake()

    def _state(self, te_id: int, attempt: int) -> dask_worker.RunState:
        return dask_worker.RunState(dask_worker.task_key(self.home_id, te_id, attempt), client=self.client)

    def _result_of(self, te_id: int, attempt: int) -> dict[str, Any]:
        """The run's result from its ``result`` mark, checked field by field."""
        try:
            return dask_worker.decode_result(self._state(te_id, attempt).get("result"))
        except ValueError as exc:
            log.warning("task execution %s: its result on the Dask cluster is not aiflow-nb's: %s", te_id, exc)
            return dask_worker.payload(
                "FAILED", f"its result on the Dask cluster was missing or not aiflow-nb's ({exc})"
            )

    def _record_of(self, te_id: int, attempt: int) -> bool:
        """Queue the outcome if the home holds it already (ended before the service went down)."""
        try:
            result = json.loads((run_dir(self.home, te_id, attempt) / "result.json").read_text())
        except (OSError, ValueError):
            return False
        self._recorded.append(Outcome(te_id, attempt, TaskStatus(result["status"]), result.get("error")))
        self.wake()
        return True

    def _outcome(self, run: _Run) -> Outcome:
        te_id, attempt, future = run.task_execution_id, run.attempt, run.future
        if future.status == "finished":
            # Never future.result(): Dask would unpickle what the worker sent, and whoever reaches the
            # scheduler can change what a worker runs.  The run's result mark is JSON text (msgpack).
            payload = self._result_of(te_id, attempt)
        elif future.status == "cancelled":
            if run.stop_deadline is not None:
                payload = dask_worker.payload("STOPPED", None)
            else:
                payload = dask_worker.payload("FAILED", "its future was cancelled on the cluster")
        else:
            exc = future.exception()
            payload = dask_worker.payload("FAILED", f"on the Dask cluster: {type(exc).__name__}: {exc}")
        folder = run_dir(self.home, te_id, attempt)
        if payload.get("log"):
            with open(folder / "log.txt", "a", encoding="utf-8") as out:
                out.write(payload["log"])
        if payload.get("notebook") is not None:
            (folder / "output.ipynb").write_text(payload["notebook"], encoding="utf-8")
        # Written last: from here on a restarted service reads the outcome from the home.
        write_json(folder / "result.json", {"status": payload["status"], "error": payload["error"]})
        self._state(te_id, attempt).forget()
        future.release()
        return Outcome(te_id, attempt, TaskStatus(payload["status"]), payload["error"])


def dask_security(address: str, ca: str | None, cert: str | None, key: str | None) -> Any:
    """``distributed.Security`` for TLS with these files; None (Dask's own configuration) without them."""
    if ca is None and cert is None and key is None:
        return None
    given = {"--dask-tls-ca": ca, "--dask-tls-cert": cert, "--dask-tls-key": key}
    for option, path in given.items():
        if path is None:
            raise ExecutorError(
                f"dask: TLS needs --dask-tls-ca, --dask-tls-cert and --dask-tls-key; {option} is missing"
            )
        if not os.access(path, os.R_OK):
            raise ExecutorError(f"dask: {option} {path}: no such file, or not readable")
    if not address.startswith("tls://"):
        raise ExecutorError(f"dask: TLS files given but the scheduler address {address!r} is not tls://")
    from distributed import Security

    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


__all__ = ["DaskExecutor"]
