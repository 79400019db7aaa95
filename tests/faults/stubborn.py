"""A task that will not die: it ignores SIGTERM and forks children that ignore it too.

Run as a Python task (``stubborn:main``) or called from a notebook cell. It
writes ``<pid> <start time>`` of itself and of each child to ``pids``
(atomically, once all are started), then sleeps for good.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

CHILDREN = 2


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def main(pids: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = []
    for _ in range(CHILDREN):
        pid = os.fork()
        if pid == 0:  # a forked child: SIG_IGN is inherited; it sleeps until killed
            while True:
                time.sleep(1)
        children.append(pid)
    # An exec'd child: an ignored signal stays ignored across exec.
    children.append(subprocess.Popen(["sleep", "600"]).pid)
    lines = "".join(f"{pid} {_start_time(pid)}\n" for pid in [os.getpid(), *children])
    with open(pids + ".tmp", "w") as out:
        out.write(lines)
    os.replace(pids + ".tmp", pids)
    while True:
        time.sleep(1)
