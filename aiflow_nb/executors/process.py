"""Process identity that survives pid reuse: pid plus its start time."""

from __future__ import annotations

import os


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
