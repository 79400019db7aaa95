"""The fork servers of a ``kernel-pool`` executor: task runners and their kernels forked on demand.

One runner server per home (the task runner and papermill imported) and one
kernel server per Python kernel spec the pool keeps.  A launch that finds
no spare forks a runner; a notebook's runner forks its kernel.  The servers
end with the engine that started them (the runs they forked live on) and
are started again if they die.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aiflow_nb.executors.forking.provisioner import forkable_args, server_for
from aiflow_nb.executors.forking.servers import ServerHandle, log


def spec_forkable(kernel_name: str, python: str = sys.executable) -> bool:
    """True if the kernel spec ``kernel_name`` starts an ipykernel on ``python`` (so it can be forked)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return False
    argv = list(spec.argv)
    if argv and argv[0] in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        argv[0] = sys.executable  # as jupyter_client does
    return forkable_args(argv, spec.language or "", python) is not None


class ForkedRunners:
    """Forks task runners (and has their kernels' servers ready) for a pool."""

    def __init__(self, home: Path, python: str, preload: tuple[str, ...]) -> None:
        self.home = home
        self.python = python
        self.preload = preload
        owner = os.getpid()
        self.runners = ServerHandle(home, "runner", python=python, owner=owner)
        #: Per kernel name: its server, or None if it cannot be forked (it starts the usual way).
        self.kernels: dict[str, ServerHandle | None] = {}
        self.runners.ensure()

    def add_kernel(self, name: str) -> None:
        if name in self.kernels:
            return
        forkable = spec_forkable(name, self.python)
        self.kernels[name] = server_for(self.home, name, self.preload, owner=os.getpid()) if forkable else None
        if not forkable:
            log.info("kernel %r is not a Python kernel of %s: it starts the usual way", name, self.python)
        self.check()

    def check(self) -> None:
        """Start again the servers that died (and the ones that failed, once their retry time has come)."""
        for server in [self.runners, *self.kernels.values()]:
            if server is not None:
                server.ensure()

    def launch(self, run_dir: Path, env: dict[str, str], kernel: str | None) -> int | None:
        """Fork the runner of ``run_dir``; its pid, or None (no runner server yet)."""
        request: dict[str, Any] = {
            "run_dir": str(run_dir),
            "env": env,
            "cwd": str(run_dir),
            "log": str(run_dir / "log.txt"),
            "kernel": kernel,
            "preload": list(self.preload),
        }
        return self.runners.fork(request)

    def close(self) -> None:
        for server in [self.runners, *self.kernels.values()]:
            if server is not None:
                server.stop()
