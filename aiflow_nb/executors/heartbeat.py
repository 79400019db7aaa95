"""A run's signs of life: its heartbeat file, and its end when the process that started it dies."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from aiflow_nb.executors.run_folder import HEARTBEAT_FILE


def _beat(path: Path, interval: float, done: threading.Event) -> None:
    while True:
        try:
            path.touch()
        except OSError:
            pass  # a full disk must not kill the task; the executor then sees no heartbeat
        if done.wait(interval):
            return


class Silence:
    """Seconds since the run's heartbeat last changed (before the first, since its claim), as elapsed time.

    The file's time is the wall clock's, which can step; so it is only
    compared with itself: the silence is the monotonic time since it was last
    seen to change, and a clock step is not taken for a hung task. ``None``
    while neither file exists.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._mark: tuple[str, int] | None = None
        self._since = time.monotonic()

    def __call__(self) -> float | None:
        for name in (HEARTBEAT_FILE, "claim"):
            try:
                mark = (name, (self.run_dir / name).stat().st_mtime_ns)
            except OSError:
                continue
            now = time.monotonic()
            if mark != self._mark:
                self._mark, self._since = mark, now
            return now - self._since
        return None


def start_heartbeat(run_dir: Path, interval: float) -> threading.Event:
    """Touch ``run_dir/heartbeat`` every ``interval`` s until the returned event is set."""
    done = threading.Event()
    threading.Thread(
        target=_beat, args=(run_dir / HEARTBEAT_FILE, interval, done), name="aiflow-nb-heartbeat", daemon=True
    ).start()
    return done


def _orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    # Our parent (a Dask worker) died: take the task's whole group, kernel included, with it.
    os.killpg(0, signal.SIGKILL)


def watch_parent() -> None:
    """End this run's process group once the process in ``AIFLOW_NB_PARENT_PID`` is not our parent."""
    parent = os.environ.get("AIFLOW_NB_PARENT_PID")
    if parent and parent.isdigit():
        threading.Thread(target=_orphaned, args=(int(parent),), name="aiflow-nb-parent", daemon=True).start()
