"""A kernel started ahead of time, and the papermill engine that runs a notebook on it.

A spare of the ``kernel-pool`` executor starts a :class:`WarmKernel` and
connects to it before any task exists.  When a notebook task arrives,
papermill runs it with the ``aiflow-nb-warm`` engine: papermill's own
``nbclient`` engine (parameters, outputs, the saved notebook and its
metadata are exactly papermill's), except that the client is the one
already connected.  A fresh client would first wait for the kernel's
output channel to stay quiet for 0.2 s, which is most of the run of a
short notebook.  And papermill writes the whole output notebook at the
notebook's start, at each cell's start and end, and at its end (most of
the run of a short notebook on a warm kernel); here the
writes in between wait until a cell has run for :data:`SAVE_AFTER` seconds,
so a short run writes twice and a long one can be watched as with papermill.

>>> kernel = WarmKernel.start("python3")  # doctest: +SKIP
>>> papermill.execute_notebook(src, out, engine_name=ENGINE, warm_kernel=kernel)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from typing import Any

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.log import logger as papermill_logger

#: The name papermill knows the engine by (registered when this module is imported).
ENGINE = "aiflow-nb-warm"

#: An ipykernel task kernel keeps its input history in memory: no shared history file to lock and write per cell.
IPYKERNEL_ARGUMENTS = ("--HistoryManager.hist_file=:memory:",)

#: Seconds a cell runs before the output notebook is written with it marked running.
SAVE_AFTER = 0.25


class KernelSetupError(Exception):
    """The run's set-up (its environment and folder) failed in the warm kernel."""


class WarmKernel:
    """A started kernel (an AsyncKernelManager, as nbclient's own) with a connected, ready client."""

    def __init__(self, manager: AsyncKernelManager, timeout: float) -> None:
        self.manager = manager
        #: Connected once the kernel listens (None until then).
        self.client: Any = None
        #: The kernel's ``language_info``, read once: papermill asks for it after every run.
        self.language_info: dict[str, Any] = {}
        self._setup: str | None = None
        #: Code given to :meth:`set_up` before the client was connected.
        self._setup_code: str | None = None
        #: The first ``kernel_info`` request, until it is answered.
        self._first: str | None = None
        self._timeout = timeout
        self._ready = False

    @classmethod
    def start(cls, kernel_name: str, timeout: float = 60.0, wait: bool = True) -> WarmKernel:
        """Start a kernel and connect to it; with ``wait=False``, return once the kernel is asked for.

        Then the kernel starts while its caller prepares the run: the warm
        engine waits for it (:meth:`ready`: it connects once the kernel
        listens) before the notebook, and runs the notebook on a kernel of
        its own if this one died first.
        """
        manager = AsyncKernelManager(kernel_name=kernel_name)
        # A forked kernel's launch returns at once; the client connects once it listens (see ready).
        manager.listening_later = not wait  # type: ignore[attr-defined]
        spec = manager.kernel_spec
        extra = list(IPYKERNEL_ARGUMENTS) if spec is not None and runs_ipykernel(spec.argv) else []
        run_sync(manager.start_kernel)(extra_arguments=extra)
        kernel = cls(manager, timeout)
        try:
            if wait:
                run_sync(kernel.ready)()
        except BaseException:
            kernel.shut_down()
            raise
        return kernel

    def alive(self) -> bool:
        return bool(run_sync(self.manager.is_alive)())

    def run_silently(self, code: str, timeout: float = 30.0) -> dict[str, Any]:
        """Run ``code`` leaving no trace in the kernel's history or outputs; the reply's content."""
        run_sync(self.ready)()
        reply = run_sync(self.client.execute_interactive)(code, silent=True, store_history=False, timeout=timeout)
        return dict(reply["content"])

    def set_up(self, code: str) -> None:
        """Send ``code`` to run silently before the notebook, without waiting for it.

        The kernel runs it while papermill reads and parameterizes the
        notebook (or, not connected yet, once connected: first); the warm
        engine checks its reply before the first cell (:class:`KernelSetupError`
        if it failed).
        """
        if self.client is None:
            self._setup_code = code
        else:
            self._setup = self.client.execute(code, silent=True, store_history=False)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for the code sent by :meth:`set_up`; raise :class:`KernelSetupError` if it failed."""
        if self._setup is None:
            return
        setup, self._setup = self._setup, None
        try:
            content = (await self._reply(setup, timeout))["content"]
        except TimeoutError as exc:
            raise KernelSetupError(f"could not prepare the warm kernel: {exc}") from None
        if content["status"] != "ok":
            raise KernelSetupError(f"could not prepare the warm kernel: {content.get('evalue')}")

    async def ready(self) -> None:
        """Connect once the kernel listens, and wait, once, for the answer to its first ``kernel_info``.

        RuntimeError if the kernel died first, TimeoutError if it did not answer in time.
        """
        if self._ready:
            return
        if self.client is None:
            listening = getattr(self.manager.provisioner, "listening", None)
            if listening is not None:
                await listening()
            self.client = self.manager.client()
            self.client.start_channels()
            self._first = self.client.kernel_info()
            # The first execution of a kernel pays for lazy set-up: send one now (silently, so it leaves
            # no trace), not waited for.
            self.client.execute("pass", silent=True, store_history=False)
            if self._setup_code is not None:
                code, self._setup_code = self._setup_code, None
                self.set_up(code)
        assert self._first is not None
        info = await self._wait_ready(self._timeout, self._first)
        self._ready = True
        self.language_info = dict(info["content"].get("language_info") or {})

    async def _wait_ready(self, timeout: float, msg_id: str) -> dict[str, Any]:
        """The kernel's first ``kernel_info`` reply, once its output channel is seen to be connected.

        jupyter_client's ``wait_for_ready`` would then wait for the output
        channel to stay quiet for a while; the messages of this request, or
        the kernel's welcome on that channel, are enough to know it is
        connected.
        """
        deadline = time.monotonic() + timeout
        while True:
            reply = None
            while reply is None:
                try:
                    reply = await self._reply(msg_id, min(1.0, max(0.0, deadline - time.monotonic())))
                except TimeoutError:
                    if not await self.manager.is_alive():
                        raise RuntimeError("the kernel died before it was ready") from None
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the kernel did not start within {timeout:g} s") from None
            if await self._seen_on_iopub(msg_id, min(1.0, max(0.0, deadline - time.monotonic()))):
                return reply
            msg_id = self.client.kernel_info()

    async def _seen_on_iopub(self, msg_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = await self.client.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            # The kernel welcomes each new subscriber (ipykernel 7): connected, even if the
            # request's own status messages went out before the subscription took.
            if msg["parent_header"].get("msg_id") == msg_id or msg["header"].get("msg_type") == "iopub_welcome":
                return True

    async def _reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        # Replies to other requests (the first execution's) are dropped, as nbclient does.
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = await self.client.get_shell_msg(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the kernel did not answer within {timeout:g} s") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply)

    def shut_down(self) -> None:
        try:
            if self.client is not None:
                self.client.stop_channels()
        finally:
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)


def runs_ipykernel(argv: list[str]) -> bool:
    """True if a kernel spec's command runs ipykernel (``-m ipykernel_launcher``): it takes IPython options."""
    return any(argv[i : i + 2] in (["-m", "ipykernel_launcher"], ["-m", "ipykernel"]) for i in range(len(argv) - 1))


def warm_up_papermill() -> None:
    """Pay now what papermill's first run in a process costs, before a task waits for it.

    Mostly compiling nbformat's schema validator; also the parameter
    translators.  Nothing is written and nothing is logged.
    """
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    quiet = logging.getLogger("papermill")
    was, quiet.disabled = quiet.disabled, True
    try:
        prepared = papermill.execute_notebook(
            notebook, None, parameters={"a": 1, "b": "x"}, prepare_only=True, progress_bar=False
        )
        nbformat.writes(prepared)
    finally:
        quiet.disabled = was


class _DeferredSaves(NotebookExecutionManager):  # type: ignore[misc]
    """papermill's manager, whose writes at the notebook's start and a cell's start and end wait for :meth:`flush`.

    The end of the notebook and papermill's 30 s autosave write at once, with whatever is pending.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferring = False
        self.pending = False

    def save(self, **kwargs: Any) -> None:
        if self._deferring:
            self.pending = True
            return
        self.pending = False
        super().save(**kwargs)

    def flush(self) -> None:
        if self.pending:
            self.save()

    def _deferred(self, step: Any, *args: Any, **kwargs: Any) -> None:
        self._deferring = True
        try:
            step(*args, **kwargs)
        finally:
            self._deferring = False

    def notebook_start(self, **kwargs: Any) -> None:
        self._deferred(super().notebook_start, **kwargs)

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._deferred(super().cell_start, cell, cell_index, **kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._deferred(super().cell_complete, cell, cell_index, **kwargs)


class _ConnectedClient(PapermillNotebookClient):  # type: ignore[misc]
    def start_new_kernel_client(self) -> Any:
        raise AssertionError("the warm engine's client is connected before the run")

    async def async_execute_cell(
        self, cell: Any, cell_index: int, execution_count: int | None = None, store_history: bool = True
    ) -> Any:
        # Runs on the loop that handles the cell's messages, so the write never sees a half-updated cell.
        timer = asyncio.get_running_loop().call_later(SAVE_AFTER, self.nb_man.flush)
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            timer.cancel()

    # nbclient binds its synchronous form to its own coroutine: bind it to this one.
    execute_cell = run_sync(async_execute_cell)

    warm: WarmKernel

    def execute(self, **kwargs: Any) -> Any:
        # papermill's execute, after the run's set-up and without asking the kernel for its
        # language_info again (read when it started).
        self.reset_execution_trackers()
        with self.setup_kernel(**kwargs):
            run_sync(self.warm.settle)()
            self.log.info(f"Executing notebook with kernel: {self.kernel_name}")
            self.papermill_execute_cells()
            self.nb.metadata["language_info"] = self.warm.language_info
            self.set_widgets_metadata()
        return self.nb


class WarmKernelEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine on a :class:`WarmKernel` (the ``warm_kernel`` argument)."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: str | None = None,
        progress_bar: bool = True,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        **kwargs: Any,
    ) -> Any:
        # papermill's Engine.execute_notebook with the manager that defers its writes.
        nb_man = _DeferredSaves(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        *,
        warm_kernel: WarmKernel,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            run_sync(warm_kernel.ready)()
        except (RuntimeError, TimeoutError) as exc:
            # Started for this run, it died (or hung) before it answered: the run starts its own kernel.
            papermill_logger.warning("The kernel started for this run did not answer (%s): starting another", exc)
            warm_kernel.shut_down()
            return super().execute_managed_notebook(
                nb_man,
                kernel_name,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                start_timeout=start_timeout,
                execution_timeout=execution_timeout,
                **kwargs,
            )
        # As NBClientEngine: these arguments are papermill's, or named differently for nbclient.
        for name in ("input_path", "timeout", "startup_timeout", "km"):
            kwargs.pop(name, None)
        client = _ConnectedClient(
            nb_man,
            km=warm_kernel.manager,  # not owned: nbclient leaves the kernel running, the spare ends it
            kernel_name=kernel_name,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            log=papermill_logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            **kwargs,
        )
        client.kc = warm_kernel.client
        client.warm = warm_kernel
        client.kc.allow_stdin = False
        return client.execute()


papermill_engines.register(ENGINE, WarmKernelEngine)

__all__ = ["ENGINE", "KernelSetupError", "WarmKernel", "WarmKernelEngine", "runs_ipykernel", "warm_up_papermill"]
