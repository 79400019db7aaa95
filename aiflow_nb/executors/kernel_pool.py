"""KernelPoolExecutor: the local executor with runners (and kernels) started ahead of time.

A task run pays for a Python interpreter, imports and, for a notebook, a
kernel start: most of the time of a short papermill run.  This
executor keeps spare runners that have paid it already (``runner --warm``):
``pool_size`` for bash and Python tasks, and as many per kernel name for
notebook tasks, each with its kernel started.  A launch hands the run
folder to a spare, which becomes that run's runner (claim, heartbeat,
result, log: all as with ``local``).  A spare runs one task and exits with
its kernel, so no state ever passes from one task run to the next.

Spares are replaced once no task was launched for ``REFILL_DELAY`` seconds,
and an empty pool once the runs on spares have ended: starting one costs
much CPU, most of it for the kernel, which on a small
machine would otherwise slow down the very tasks (a chain, a burst, a short
task) the pool is there to speed up.  A launch that finds its pool empty
starts a spare for itself, which takes the run once it is ready.

The pool of a kernel starts with the first notebook task on that kernel
(which runs on a runner of its own), unless ``kernels`` names the kernels
to keep from the start.  Streaming tasks start a runner of their own, as
with ``local``, and so do notebooks on a kernel not in ``kernels`` when it
is given.

A launch that finds no spare forks its runner from the home's runner fork
server, and a notebook's runner forks its kernel from the kernel's fork
server (:mod:`aiflow_nb.executors.forking`): a fresh process per run, at a
small part of the cost of a start.  ``preload`` names modules the kernel
fork servers import first (``["pandas"]``); ``fork=False`` starts every
runner and kernel the usual way.

>>> Engine(home, executor="kernel-pool", executor_options={"pool_size": 2})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiflow_nb.errors import ExecutorError
from aiflow_nb.executors import process
from aiflow_nb.executors.base import LaunchRequest, run_dir
from aiflow_nb.executors.forking.runners import ForkedRunners
from aiflow_nb.executors.local import LocalExecutor, _configure, _reap, _Run
from aiflow_nb.executors.runner import SPARE_READY, notebook_kernel, task_environment, write_json
from aiflow_nb.home import make_private_folder, open_private
from aiflow_nb.workflow.records import Outcome

log = logging.getLogger("aiflow_nb.executors.kernel_pool")

#: The pool of runners for tasks without a kernel (bash, Python).
PLAIN = ""

#: Environment variables whose change does not make the spares stale: pytest rewrites
#: PYTEST_CURRENT_TEST at each phase of a test, and no task depends on it.
VOLATILE_ENV = frozenset({"PYTEST_CURRENT_TEST"})

#: Seconds without a launch after which used spares are replaced (an empty pool as soon as no run is on a spare).
REFILL_DELAY = 0.5


class KernelPoolExecutor(LocalExecutor):
    """``local`` with spare runners: ``pool_size`` per kernel in ``kernels``, and for bash and Python."""

    name = "kernel-pool"

    def __init__(
        self,
        home: Path,
        *,
        pool_size: int = 1,
        kernels: list[str] | tuple[str, ...] | None = None,
        fork: bool = True,
        preload: list[str] | tuple[str, ...] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ExecutorError(f"kernel-pool: pool_size must be a positive integer, got {pool_size!r}")
        if kernels is not None and (
            isinstance(kernels, str)
            or not isinstance(kernels, list | tuple)
            or not all(isinstance(k, str) and k for k in kernels)
        ):
            raise ExecutorError(f"kernel-pool: kernels must be a list of kernel names, got {kernels!r}")
        if not isinstance(fork, bool):
            raise ExecutorError(f"kernel-pool: fork must be true or false, got {fork!r}")
        if preload is not None and (
            isinstance(preload, str)
            or not isinstance(preload, list | tuple)
            or not all(isinstance(m, str) and m.strip() and "," not in m for m in preload)
        ):
            raise ExecutorError(f"kernel-pool: preload must be a list of module names, got {preload!r}")
        super().__init__(home, **options)  # checked first: this starts a listener thread
        self.pool_size = pool_size
        #: None: a kernel's pool starts with its first task.
        self.kernels = None if kernels is None else list(kernels)
        self.sizes = {PLAIN: pool_size, **dict.fromkeys(self.kernels or (), pool_size)}
        self.spares: dict[str, deque[subprocess.Popen[bytes]]] = {kind: deque() for kind in self.sizes}
        make_private_folder(home / "logs")
        make_private_folder((home / SPARE_READY).parent)
        self._spare_log = home / "logs" / "kernel-pool.log"
        self._last_launch = 0.0
        #: Task executions launched on a spare and not yet ended.
        self._on_spares: set[int] = set()
        #: Whether the last _take found the environment changed (and let the spares go).
        self._changed_env = False
        #: The environment the spares were started with: a task gets the engine's as at its launch.
        self._spare_env = self._environment()
        self._forks = ForkedRunners(self.home, self.python, tuple(m.strip() for m in preload or ())) if fork else None
        if self._forks is not None:
            for kernel in self.kernels or ():
                self._forks.add_kernel(kernel)
        self._fill()

    def launch(self, request: LaunchRequest) -> None:
        te_id, attempt = request["task_execution_id"], request["attempt"]
        watched = self.runs.get(te_id)
        folder = run_dir(self.home, te_id, attempt)
        pool = self._pool_of(request["task"])
        if pool is None or (watched is not None and watched.attempt == attempt) or (folder / "claim").exists():
            super().launch(request)  # a runner of its own; or launched (claimed) already, which local handles
            return
        spare = self._take(pool, start=self._forks is None)
        if spare is None and self._launch_forked(request, folder, pool):
            return
        if spare is None and self._forks is not None and not self._changed_env:
            spare = self._start_spare(pool)  # no runner server (yet)
        if spare is None:
            super().launch(request)
            return
        make_private_folder(folder)
        write_json(folder / "task.json", request)
        assert spare.stdin is not None
        try:
            spare.stdin.write(f"{folder}\n".encode())
            spare.stdin.close()
        except OSError:  # it died since _take looked: start this run the usual way
            threading.Thread(target=_reap, args=([spare],), name="aiflow-nb-reaper", daemon=True).start()
            super().launch(request)
            return
        run = _Run(te_id, attempt, folder, popen=spare, pid=spare.pid, since=time.monotonic())
        _configure(run, request)
        self.runs[te_id] = run
        self._on_spares.add(te_id)
        log.info("launched task execution %s attempt %s on spare runner pid %s", te_id, attempt, spare.pid)
        self._last_launch = time.monotonic()
        self._fill()

    def poll(self) -> list[Outcome]:
        self._fill()  # replaces spares that died (a kernel that would not start, say)
        if self._forks is not None:
            self._forks.check()  # and fork servers
        return super().poll()

    def close(self) -> None:
        self._let_go([p for pool in self.spares.values() for p in pool])
        for pool in self.spares.values():
            pool.clear()
        if self._forks is not None:
            self._forks.close()
        super().close()

    def _launch_forked(self, request: LaunchRequest, folder: Path, pool: str | None) -> bool:
        """Fork the run's runner (and so its kernel); False if there is no runner server to fork it."""
        if self._forks is None or pool is None:
            return False
        te_id, attempt = request["task_execution_id"], request["attempt"]
        make_private_folder(folder)
        write_json(folder / "task.json", request)
        env = {**self._environment(), **task_environment(request), "AIFLOW_NB_RUN_DIR": str(folder)}
        pid = self._forks.launch(folder, env, pool or None)
        if pid is None:
            return False
        run = _Run(te_id, attempt, folder, pid=pid, started=process.start_time(pid), since=time.monotonic())
        _configure(run, request)
        self.runs[te_id] = run
        self._on_spares.add(te_id)
        log.info("launched task execution %s attempt %s on a forked runner pid %s", te_id, attempt, pid)
        self._last_launch = time.monotonic()
        self._fill()
        return True

    def _ready_file(self, spare: subprocess.Popen[bytes]) -> Path:
        return self.home / SPARE_READY.format(pid=spare.pid)

    def _let_go(self, spares: list[subprocess.Popen[bytes]]) -> None:
        """End idle spares: each reads EOF on its stdin, shuts its kernel down and exits."""
        for spare in spares:
            self._ready_file(spare).unlink(missing_ok=True)
            if spare.stdin is not None:
                try:
                    spare.stdin.close()
                except OSError:
                    pass
        if spares:
            threading.Thread(target=_reap, args=(spares,), name="aiflow-nb-reaper", daemon=True).start()

    # -- the pools ---------------------------------------------------------------

    def _pool_of(self, task: dict[str, Any]) -> str | None:
        """Which pool runs ``task``; None: a runner of its own."""
        if task.get("streaming"):
            return None  # runs for hours: a second of start-up does not matter, a spare kernel would
        kind = task.get("kind")
        if kind in ("bash", "python"):
            return PLAIN
        if kind == "notebook":
            kernel = notebook_kernel(task)
            if not kernel:
                return None
            if kernel not in self.sizes and self.kernels is None:
                log.info("starting a pool of %s spare kernel(s) %r", self.pool_size, kernel)
                self.sizes[kernel] = self.pool_size
                self.spares[kernel] = deque()
                if self._forks is not None:
                    self._forks.add_kernel(kernel)
                return None  # this task starts the pool, on a runner of its own
            return kernel if kernel in self.sizes else None
        return None

    def _take(self, pool: str | None, start: bool = True) -> subprocess.Popen[bytes] | None:
        """A live spare of ``pool``; else one started now if ``start``; None if the environment changed."""
        self._changed_env = False
        if pool is None:
            return None
        env = self._environment()
        if _without_volatile(env) != _without_volatile(self._spare_env):
            # As with local, a run sees the environment of its launch: spares started before
            # it changed (PYTHONPATH set in a notebook, say) are let go and replaced.
            log.info("the environment changed: replacing the spare runners")
            self._let_go([p for spares in self.spares.values() for p in spares])
            for spares in self.spares.values():
                spares.clear()
            self._spare_env = env
            self._changed_env = True
            return None
        spares = self.spares[pool]
        for spare in list(spares):
            if spare.poll() is not None:
                spares.remove(spare)
                self._ready_file(spare).unlink(missing_ok=True)
                log.warning("a spare runner exited early (code %s); see %s", spare.returncode, self._spare_log)
            elif self._forks is None or self._ready_file(spare).exists():  # else a fork is sooner
                spares.remove(spare)
                self._ready_file(spare).unlink(missing_ok=True)
                return spare
        # Started now, it takes the run once ready: still sooner than a runner of the run's own.
        return self._start_spare(pool) if start else None

    def _fill(self) -> None:
        quiet = time.monotonic() - self._last_launch >= REFILL_DELAY
        self._on_spares &= self.runs.keys()
        # Not beside a run that just started on a spare: a short task would pay for the new spare's start.
        # With forks, not until launches pause: a fork is sooner than a spare still starting.
        least = 0 if self._on_spares or self._forks is not None else 1
        for pool, size in self.sizes.items():
            spares = self.spares[pool]
            for spare in [s for s in spares if s.poll() is not None]:
                spares.remove(spare)
                self._ready_file(spare).unlink(missing_ok=True)
            while len(spares) < (size if quiet else least):
                spares.append(self._start_spare(pool))

    def _start_spare(self, pool: str) -> subprocess.Popen[bytes]:
        command = [self.python, "-m", "aiflow_nb.executors.runner", "--warm"]
        if pool != PLAIN:
            command.append(pool)
        with os.fdopen(open_private(self._spare_log), "ab") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=self._spare_env,
                start_new_session=True,  # a stop reaches the runner's whole group, kernel included
            )

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "AIFLOW_NB_HOME": str(self.home)}


def _without_volatile(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in VOLATILE_ENV}


__all__ = ["KernelPoolExecutor"]
