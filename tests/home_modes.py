"""What of a home is readable or writable by others than its owner (issue 26, item 1)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def not_owner_only(home: Path) -> list[str]:
    """Every entry of ``home`` (itself included) with a group or other permission bit, as "path mode".

    A folder must be 0700, a file 0600 (0700 if executable); symbolic links are skipped.
    """
    wrong = []
    entries = [str(home)]
    for folder, dirs, files in os.walk(home):
        entries += [os.path.join(folder, name) for name in dirs + files]
    for path in entries:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # a temp file of a run, gone meanwhile
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            continue
        if (stat.S_ISDIR(st.st_mode) and mode != 0o700) or mode & 0o077:
            wrong.append(f"{os.path.relpath(path, home)} {mode:04o}")
    return wrong


def kinds(home: Path) -> set[str]:
    """The names of the files found in the home and its run folders (to show what the walk saw)."""
    return {name for _, _, files in os.walk(home) for name in files}
