"""What a forked child does: become a process of its own, then a kernel or a task runner.

Right after the fork it resets the server's signal handlers, leads a new
session (so a stop reaches its whole group), takes the requester's stdout
and stderr (or the run's log), closes every other descriptor it inherited
(the server's listener among them) but the requester's ready pipe, if it
sent one, and takes the request's environment,
working folder, umask and ``sys.path`` (``PYTHONPATH`` as in the request).
A kernel also ends, with its group, when the process that asked for it
(the one managing it) has ended.  Once its sockets listen it writes to
the ready pipe: its manager connects then, and its first connection is
taken (zmq tries a refused one again only after its reconnect interval).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import select
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from aiflow_nb.executors.forking import channel

#: Exit code of a child that failed before running its target.
SETUP_FAILED = 70

#: Seconds without a request after which a child forked ahead takes its references
#: (:func:`touch_shared`): not at once, when the child handed the request before is starting.
TOUCH_AFTER = 0.02


def become(request: dict[str, Any], fds: list[int], base_path: list[str]) -> NoReturn:
    """Turn this freshly forked process into the requested child; exits with its code."""
    code: int = SETUP_FAILED
    try:
        _reset_signals()
        os.setsid()
        _take_stdio(request, fds)
        ready = fds[2] if request.get("ready") and len(fds) > 2 else None
        _close_inherited(keep=ready)
        request["ready_fd"] = ready
        channel.forget()
        os.umask(int(request.get("umask", 0o077)))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.path[:] = python_path(request["env"], base_path, request["cwd"])
        _reseed()
        owner = request.get("owner")
        if owner:
            _end_with(int(owner))
        code = TARGETS[request["kind"]](request)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # as an interpreter that ends would (IPython saves its history)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait_for_request(conn: Connection, base_path: list[str]) -> NoReturn:
    """A child forked ahead: wait for the request on ``conn``, then :func:`become` it.

    Once no request came for :data:`TOUCH_AFTER` seconds (the child before
    it is on its way) it takes its references (:func:`touch_shared`) until a
    request comes.  It ends when the server closes its end of ``conn`` (the
    server ended) before a request came.
    """
    try:
        _reset_signals()
        _close_inherited(keep=conn.fileno())
        channel.forget()
        if not conn.poll(TOUCH_AFTER):
            with contextlib.suppress(Exception):
                touch_shared(stop=lambda: conn.poll(0))
        message = channel.receive(conn, timeout=None)
        fds = channel.receive_fds(conn, int(message["fds"])) if message.get("fds") else []
        conn.close()
    except BaseException:
        os._exit(0)  # the server ended (or went wrong) before a request came: nothing was asked of this child
    become(message, fds, base_path)


def touch_shared(stop: Callable[[], bool] = lambda: False) -> None:
    """Take a reference to the objects a child's start takes one to first, so their pages are copied now.

    A forked child shares its server's memory until it writes to a page, and
    CPython writes to each object it takes a reference to (its count).  A
    child's start goes over what was imported (ipykernel's kernel lists the
    file of every loaded module; traitlets walks classes and their traits);
    a child forked ahead does so while it waits, rather than after the
    request came: the loaded modules, the values of their namespaces, the
    attributes of their classes and the code of their functions.  It stops
    early once ``stop()`` says so (looked at every few modules).
    """
    classes: set[int] = set()
    for count, module in enumerate(list(sys.modules.values())):
        if count % 16 == 0 and stop():
            return
        # Plain modules, functions and classes only: a lazy module or a proxy would run code when looked at.
        if type(module) is not types.ModuleType:
            continue
        for value in list(module.__dict__.values()):
            kind = type(value)
            if kind is types.FunctionType:
                value.__code__  # noqa: B018
            elif issubclass(kind, type) and id(value) not in classes:
                classes.add(id(value))
                for attribute in list(vars(value).values()):
                    if type(attribute) is types.FunctionType:
                        attribute.__code__  # noqa: B018


def python_path(env: dict[str, str], base: list[str], cwd: str) -> list[str]:
    """``sys.path`` of a Python started with ``env``: its ``PYTHONPATH`` entries, then the server's own."""
    entries = [os.path.join(cwd, p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [*entries, *(p for p in base if p not in entries)]


def _reset_signals() -> None:
    for signum in (signal.SIGALRM, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN if signum == signal.SIGPIPE else signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _take_stdio(request: dict[str, Any], fds: list[int]) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if fds:
        os.dup2(fds[0], 1)
        os.dup2(fds[1] if len(fds) > 1 else fds[0], 2)
    elif request.get("log"):
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)


def _close_inherited(keep: int | None) -> None:
    """Close every descriptor from 3 up but ``keep`` (which a process this one starts does not inherit)."""
    end = _max_fd()
    if keep is None:
        os.closerange(3, end)
        return
    os.closerange(3, keep)
    os.closerange(keep + 1, end)
    os.set_inheritable(keep, False)


def _max_fd() -> int:
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def _reseed() -> None:
    """Forked children share their parent's random state: reseed what a preload may have seeded."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _end_with(owner: int) -> None:
    """End this process group once ``owner`` has ended (a killed runner takes its kernel along)."""
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        os.killpg(0, signal.SIGKILL)
        return

    def wait() -> None:
        select.select([fd], [], [])
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=wait, name="aiflow-nb-owner", daemon=True).start()


def run_kernel(request: dict[str, Any]) -> int:
    """An ipykernel kernel on the request's arguments (``-f CONNECTION_FILE`` and the spec's others)."""
    app = kernel_app_class().instance()
    app.ready_fd = request.get("ready_fd")
    # No parent poller (it would watch the fork server): the kernel ends with its owner instead.
    app.parent_handle = 1
    app.initialize(list(request["args"]))
    app.start()
    return 0


@functools.cache
def kernel_app_class() -> type[Any]:
    """ipykernel's IPKernelApp that writes to its ready pipe once its sockets listen (made before a fork)."""
    from ipykernel.kernelapp import IPKernelApp

    class ForkedKernelApp(IPKernelApp):  # type: ignore[misc]
        ready_fd: int | None = None

        def init_heartbeat(self) -> None:
            super().init_heartbeat()  # type: ignore[no-untyped-call]
            if self.ready_fd is not None:
                _say_ready(self.ready_fd)
                self.ready_fd = None

    return ForkedKernelApp


def _say_ready(fd: int) -> None:
    try:
        os.write(fd, b"1")
    except OSError:
        pass  # the manager gave up waiting: it connects anyway
    finally:
        os.close(fd)


def run_runner(request: dict[str, Any]) -> int:
    """The task runner of the run folder ``request["run_dir"]``, on a forked kernel for a notebook."""
    from aiflow_nb.executors import runner
    from aiflow_nb.executors.forking import provisioner
    from aiflow_nb.executors.warm_kernel import WarmKernel

    kernel: WarmKernel | None = None
    name = request.get("kernel")
    if name:
        provisioner.use_by_default(preload=request.get("preload") or ())
        try:
            # The kernel finishes starting while this runner claims and prepares the run.
            kernel = WarmKernel.start(name, wait=False)
        except Exception:
            traceback.print_exc()  # the task then starts its own kernel
    try:
        return runner.main([str(Path(request["run_dir"]))], kernel)
    finally:
        if kernel is not None:
            try:
                kernel.shut_down()
            except Exception:
                traceback.print_exc()


TARGETS: dict[str, Callable[[dict[str, Any]], int]] = {"kernel": run_kernel, "runner": run_runner}
