"""The ``python`` and ``bash`` kinds' work: a callable imported and called, a shell command waited on."""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from aiflow_nb.executors.runners import TaskFailed


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
