"""Process identity that survives pid reuse: pid plus its start time."""

from __future__ import annotations

import os
from signal import SIGKILL


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # a zombie has ended
        return None
    return fields[19].decode()


def alive(pid: int, started: str | None) -> bool:
    """True if the process ``pid`` that started at ``started`` still runs."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def identity() -> str:
    """``"<pid> <start time>"`` of this process, as written to a claim file."""
    return f"{os.getpid()} {start_time(os.getpid()) or ''}"


def parse_identity(text: str) -> tuple[int, str | None] | None:
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None
    return int(parts[0]), (parts[1] if len(parts) > 1 else None)


def signal(pid: int, signum: int, group: bool = True) -> None:
    """Send ``signum`` to ``pid``'s process group (or to ``pid`` alone); gone already is fine."""
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _parents_and_groups() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process on this machine (zombies included)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # ended while we looked
        fields = stat[stat.rindex(b")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def tree_groups(pid: int) -> set[int]:
    """The process groups of ``pid`` and of every process descending from it.

    A task's processes are in its runner's group, except those that lead a
    session of their own while still descending from it: a Jupyter kernel
    (jupyter_client starts each in a new session), a ``setsid`` command.
    """
    table = _parents_and_groups()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    groups, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current in table:
            groups.add(table[current][1])
        todo.extend(children.get(current, ()))
    return groups


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and the groups of its descendants (:func:`tree_groups`).

    The groups are read before any is killed: a kernel's children, reparented
    once it dies, would no longer be found below ``pid``.
    """
    own = os.getpgrp()
    for group in tree_groups(pid) | {pid}:
        if group > 1 and group != own:
            signal(group, SIGKILL)
