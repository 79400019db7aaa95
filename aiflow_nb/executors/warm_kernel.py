"""A kernel started ahead of time, and the papermill engine that runs a notebook on it.

A spare of the ``kernel-pool`` executor starts a :class:`WarmKernel` and
connects to it before any task exists.  When a notebook task arrives,
papermill runs it with the ``aiflow-nb-warm`` engine: papermill's own
``nbclient`` engine (parameters, outputs, the saved notebook and its
metadata are exactly papermill's), except that the client is the one
already connected.  A fresh client would first wait for the kernel's
output channel to stay quiet for 0.2 s, which is most of the run of a
short notebook.

>>> kernel = WarmKernel.start("python3")  # doctest: +SKIP
>>> papermill.execute_notebook(src, out, engine_name=ENGINE, warm_kernel=kernel)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger

#: The name papermill knows the engine by (registered when this module is imported).
ENGINE = "aiflow-nb-warm"


class WarmKernel:
    """A started kernel (an AsyncKernelManager, as nbclient's own) with a connected, ready client."""

    def __init__(self, manager: AsyncKernelManager, client: Any) -> None:
        self.manager = manager
        self.client = client

    @classmethod
    def start(cls, kernel_name: str, timeout: float = 60.0) -> WarmKernel:
        manager = AsyncKernelManager(kernel_name=kernel_name)
        run_sync(manager.start_kernel)()
        try:
            client = manager.client()
            client.start_channels()
            run_sync(client.wait_for_ready)(timeout=timeout)
            kernel = cls(manager, client)
            # The first execution of a kernel pays for lazy set-up: pay it now (silently, so it leaves no trace).
            kernel.run_silently("pass", timeout=timeout)
        except BaseException:
            run_sync(manager.shutdown_kernel)(now=True)
            raise
        return kernel

    def alive(self) -> bool:
        return bool(run_sync(self.manager.is_alive)())

    def run_silently(self, code: str, timeout: float = 30.0) -> dict[str, Any]:
        """Run ``code`` leaving no trace in the kernel's history or outputs; the reply's content."""
        reply = run_sync(self.client.execute_interactive)(code, silent=True, store_history=False, timeout=timeout)
        return dict(reply["content"])

    def shut_down(self) -> None:
        try:
            self.client.stop_channels()
        finally:
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)


def warm_up_papermill() -> None:
    """Pay now what papermill's first run in a process costs (~0.1 s).

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


class _ConnectedClient(PapermillNotebookClient):  # type: ignore[misc]
    def start_new_kernel_client(self) -> Any:
        raise AssertionError("the warm engine's client is connected before the run")


class WarmKernelEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine on a :class:`WarmKernel` (the ``warm_kernel`` argument)."""

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
        client.kc.allow_stdin = False
        return client.execute()


papermill_engines.register(ENGINE, WarmKernelEngine)

__all__ = ["ENGINE", "WarmKernel", "WarmKernelEngine", "warm_up_papermill"]
