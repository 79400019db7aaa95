"""``aiflow-nb-fork``: a jupyter_client kernel provisioner that forks Python kernels.

Named in a kernel spec, Jupyter, nbclient and papermill use it::

    "metadata": {"kernel_provisioner": {"provisioner_name": "aiflow-nb-fork",
                                        "config": {"preload": ["pandas"]}}}

A kernel of a Python spec run by this very interpreter
(``python -m ipykernel_launcher -f {connection_file} ...``) is forked from
the home's fork server of that spec; any other kernel, or any kernel while
that server is not (yet) up, starts the usual way (``local-provisioner``),
and the server is started for the next.  The forked kernel leads its own
process group and ends with the process that manages it.  The launch
returns once the kernel's sockets listen (it says so on a pipe), so the
client's first connection is taken; for a manager whose
``listening_later`` attribute is true it returns at once, and the manager
awaits :meth:`ForkingProvisioner.listening` before it connects.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import List, Unicode, default

from aiflow_nb.executors import process
from aiflow_nb.executors.forking.servers import ServerHandle, log
from aiflow_nb.home import default_home

#: The provisioner's name in the ``jupyter_client.kernel_provisioners`` entry point group.
NAME = "aiflow-nb-fork"

#: Modules a spec with no ``preload`` config gets preloaded (:func:`use_by_default`).
_default_preload: tuple[str, ...] = ()

#: Seconds a launch waits for a forked kernel's sockets to listen before it returns anyway.
READY_TIMEOUT = 30.0

#: Seconds a kill waits for a forked kernel to have ended.
KILL_WAIT = 1.0

#: Environment variables an interpreter reads at start (other than PYTHONPATH, which a child applies itself).
_STARTUP_ENV = ("PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONPLATLIBDIR")


def forkable_args(cmd: list[str], language: str, python: str = sys.executable) -> list[str] | None:
    """The kernel's arguments if ``cmd`` starts an ipykernel on ``python``; else None (the usual start)."""
    if language.lower() != "python" or len(cmd) < 3:
        return None
    if os.path.normpath(cmd[0]) != os.path.normpath(python):
        return None
    if cmd[1:3] not in (["-m", "ipykernel_launcher"], ["-m", "ipykernel"]):
        return None
    return cmd[3:]


def server_for(home: Path, spec_name: str, preload: Iterable[str], owner: int | None = None) -> ServerHandle:
    """The kernel fork server of ``spec_name`` in ``home`` (the same one for every process of the home)."""
    return ServerHandle(home, "kernel", name=spec_name, preload=tuple(preload), owner=owner)


def register() -> None:
    """Make the provisioner known to this process even where its entry point is not installed (a source checkout)."""
    factory = KernelProvisionerFactory.instance()
    if NAME not in factory.provisioners:
        factory.provisioners[NAME] = EntryPoint(
            NAME, f"{__name__}:ForkingProvisioner", KernelProvisionerFactory.GROUP_NAME
        )


def use_by_default(preload: Iterable[str] = ()) -> None:
    """Make this process's kernel managers use this provisioner when a spec names none."""
    global _default_preload
    _default_preload = tuple(preload)
    register()
    KernelProvisionerFactory.instance().default_provisioner_name = NAME


class ForkingProvisioner(LocalProvisioner):  # type: ignore[misc]
    """``local-provisioner`` whose Python kernels are forked from a fork server when it runs."""

    preload = List(Unicode(), help="modules the fork server imports before it forks kernels").tag(config=True)
    home = Unicode(help="the aiflow-nb home whose fork server to use (default: AIFLOW_NB_HOME)").tag(config=True)

    @default("preload")
    def _preload_default(self) -> list[str]:
        return list(_default_preload)

    @default("home")
    def _home_default(self) -> str:
        return str(default_home())

    #: The forked kernel (None: none, or started the usual way).
    forked: int | None = None
    _forked_start: str | None = None
    #: The pipe the kernel says it listens on, while a launch that returned at once has not awaited it.
    _listening: int | None = None

    @property
    def has_process(self) -> bool:
        return self.forked is not None or bool(super().has_process)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        ready, says_ready = os.pipe()
        try:
            try:
                pid = self._fork(cmd, kwargs, says_ready)
            finally:
                os.close(says_ready)  # the kernel has its own: its end (or exit) ends the wait
            if pid is None:
                return await super().launch_kernel(cmd, **kwargs)
            self.forked = self.pid = self.pgid = pid
            self._forked_start = process.start_time(pid)
            self.cwd = kwargs.get("cwd") or os.getcwd()
            if getattr(self.parent, "listening_later", False):
                self._listening, ready = ready, -1
            else:
                await _readable(ready, READY_TIMEOUT)
            return self.connection_info
        finally:
            if ready >= 0:
                os.close(ready)

    async def listening(self) -> None:
        """Wait until the kernel's sockets listen, if its launch returned before (at once otherwise)."""
        fd, self._listening = self._listening, None
        if fd is not None:
            try:
                await _readable(fd, READY_TIMEOUT)
            finally:
                os.close(fd)

    async def cleanup(self, restart: bool = False) -> None:
        fd, self._listening = self._listening, None
        if fd is not None:
            os.close(fd)
        await super().cleanup(restart)

    def _fork(self, cmd: list[str], kwargs: dict[str, Any], says_ready: int) -> int | None:
        args = forkable_args(cmd, str(self.kernel_spec.language or ""))
        env: dict[str, str] = dict(kwargs.get("env") or os.environ)
        if args is None or any(env.get(k) != os.environ.get(k) for k in _STARTUP_ENV):
            return None
        home = Path(self.home)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        server = server_for(home, self._spec_name(), self.preload)
        env.pop("JPY_PARENT_PID", None)  # the kernel ends with its owner (below), not with its parent, the server
        request = {
            "args": args,
            "env": env,
            "cwd": str(kwargs.get("cwd") or os.getcwd()),
            "owner": os.getpid(),
            "ready": True,
        }
        pid = server.fork(request, fds=[1, 2, says_ready])
        if pid is None:
            why = server.failure()
            if why is not None:
                log.warning("kernel %r starts the usual way: its fork server failed (%s)", self._spec_name(), why)
        return pid

    def _spec_name(self) -> str:
        name = getattr(self.parent, "kernel_name", "") or ""
        resource_dir = getattr(self.kernel_spec, "resource_dir", "") or ""
        return str(name) or os.path.basename(resource_dir) or str(self.kernel_spec.display_name)

    async def poll(self) -> int | None:
        if self.forked is None:
            return await super().poll()  # type: ignore[no-any-return]
        # Not our child: its exit status is its server's to reap; 0 only says it has ended.
        return None if process.alive(self.forked, self._forked_start) else 0

    async def wait(self) -> int | None:
        if self.forked is None:
            return await super().wait()  # type: ignore[no-any-return]
        while await self.poll() is None:
            await asyncio.sleep(0.01)
        self.forked = None
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.forked is None:
            await super().send_signal(signum)
            return
        if process.alive(self.forked, self._forked_start):
            process.signal(self.forked, signum, group=True)

    async def kill(self, restart: bool = False) -> None:
        if self.forked is None:
            await super().kill(restart)
            return
        await self.send_signal(signal.SIGKILL)
        # Seen ended by the manager's first look, which would otherwise look again only 0.1 s later.
        deadline = asyncio.get_running_loop().time() + KILL_WAIT
        while await self.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.002)

    async def terminate(self, restart: bool = False) -> None:
        if self.forked is None:
            await super().terminate(restart)
            return
        await self.send_signal(signal.SIGTERM)


async def _readable(fd: int, timeout: float) -> None:
    """Wait until ``fd`` can be read (a byte, or end of file) or ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        log.warning("a forked kernel's sockets did not listen within %g s", timeout)
    finally:
        loop.remove_reader(fd)


__all__ = ["NAME", "ForkingProvisioner", "forkable_args", "register", "server_for", "use_by_default"]
