"""Whether a home's file system can take the service's writes, checked before it starts.

A home on a read-only file system, or on one without room for the
database to grow, is refused with one line naming the path and the cause,
rather than starting a service that fails its first write.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiflow_nb.errors import StorageError, StorageFullError

#: Less free room than this on the home's file system refuses a start (the database grows by 256 KiB blocks).
MIN_FREE_BYTES = 1024 * 1024


def existing(path: Path) -> Path:
    """``path``, or its nearest folder that exists (a home may be made at start)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def start_problem(home: Path) -> StorageError | None:
    """Why the service cannot start on ``home``'s file system (read-only, or full), or None."""
    where = existing(home)
    try:
        fs = os.statvfs(where)
    except OSError:
        return None  # left to the home's own checks, which name the cause
    if fs.f_flag & os.ST_RDONLY:
        if where == home:
            return StorageError(f"the aiflow-nb home {home} is not writable: its file system is read-only")
        return StorageError(f"cannot create the aiflow-nb home {home}: the file system of {where} is read-only")
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        return StorageFullError(
            f"disk full: the file system of the aiflow-nb home {home} has {free:,} bytes free "
            f"(the service needs at least {MIN_FREE_BYTES:,})"
        )
    return None
