"""Crash points for the reliability tests: SIGKILL this process at a named point.

Off unless ``AIFLOW_NB_FAULTS`` is set when the process starts; then
:func:`point` kills the process the n-th time it passes the named point::

    AIFLOW_NB_FAULTS=launch.after:3 python -m aiflow_nb.server ...

Without the variable :func:`point` is a function that does nothing, and
:data:`ENABLED` is False (for points whose own check costs something).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

ENV = "AIFLOW_NB_FAULTS"

#: Every crash point and what a kill there leaves behind: the one list the
#: crash matrix (tests/server/test_crash_matrix.py) draws from.
POINTS: dict[str, str] = {
    "http.read": "a request to append events was read; nothing is stored yet",
    "commit.before": "the group's events and what the rules made of them are staged, not committed",
    "commit.after": "the group's events are committed and not yet acknowledged",
    "launch.before": "a run is committed RUNNING and not yet handed to the executor",
    "launch.after": "a run was handed to the executor and is still in the outbox",
    "tasks.running": "runs are going on (the service dies under them)",
    "outcome.before": "runs ended and their outcomes are not yet committed",
    "schedule.tick": "a schedule's tick is staged, not committed",
    "submit.half": "a workflow version is written and the workflow not yet pointed at it",
    "submit.after": "a workflow version is committed and not yet acknowledged",
}


def parse(text: str) -> tuple[str, int]:
    """``"name:n"`` (or ``"name"`` for n = 1) as (name, n); ValueError names what is wrong."""
    name, _, count = text.strip().partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={text!r}: unknown crash point {name!r}; known: {', '.join(POINTS)}")
    try:
        n = int(count or "1")
    except ValueError:
        raise ValueError(f"{ENV}={text!r}: the pass number must be a whole number") from None
    if n < 1:
        raise ValueError(f"{ENV}={text!r}: the pass number must be at least 1")
    return name, n


def _noop(name: str) -> None:
    pass


def _armed(target: str, at: int) -> Callable[[str], None]:
    hits = 0
    lock = threading.Lock()

    def point(name: str) -> None:
        nonlocal hits
        if name != target:
            return
        with lock:
            hits += 1
            if hits != at:
                return
        sys.stderr.write(f"aiflow-nb: fault injection: SIGKILL at {name} (pass {at})\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    return point


_setting = os.environ.get(ENV)
ENABLED = bool(_setting)
#: Pass a crash point (see :data:`POINTS`).
point: Callable[[str], None] = _armed(*parse(_setting)) if _setting else _noop
