"""Where an aiflow-nb home is (``AIFLOW_NB_HOME`` or ``~/.aiflow_nb``), and keeping it the user's alone.

A home holds the tokens, the event log (values in the DuckDB file and its
WAL) and every task's output, so it is owner-only: the folders 0700, the
files 0600 (or 0700 if executable).  The processes that write in it set the
umask :data:`OWNER_ONLY_UMASK`, so what they create is owner-only from the
start; :func:`tighten` fixes a home an older version, or another tool, left
readable by others.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("aiflow_nb.home")

#: The umask of the service and of the task processes: nothing they create is readable by others.
OWNER_ONLY_UMASK = 0o077


def default_home() -> Path:
    return Path(os.environ.get("AIFLOW_NB_HOME") or Path.home() / ".aiflow_nb")


def database_path(home: Path) -> Path:
    return home / "aiflow.duckdb"


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents if need be, each 0700 from the start, whatever the umask.

    (``Path.mkdir(parents=True)`` gives the parents the umask's mode.)  One that exists is left as it
    is: the service tightens the whole home as it starts (:func:`tighten`).
    """
    if folder.is_dir():
        return
    parent = folder.parent
    if parent != folder:
        make_private_folder(parent)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        if not folder.is_dir():
            raise
        return  # made meanwhile by another process or thread
    os.chmod(folder, 0o700)  # mkdir's mode passes through the umask, which may take more than group and other


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """``os.open`` of a file that is owner-only (0600) from the moment it exists."""
    fd = os.open(path, flags, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & OWNER_ONLY_UMASK:
            os.fchmod(fd, 0o600)  # it existed already, readable by others
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten(home: Path) -> int:
    """Take group and other permissions off the home and everything in it; how many entries changed.

    Symbolic links are left alone (their mode means nothing; their target is not the home's).
    Logs one warning if anything changed.
    """
    changed = 0
    examples: list[str] = []

    def fix(path: str) -> None:
        nonlocal changed
        if _owner_only(Path(path)):
            changed += 1
            if len(examples) < 3:
                examples.append(os.path.relpath(path, home))

    if not home.is_dir():
        return 0
    fix(str(home))
    for folder, dirs, files in os.walk(home, onerror=lambda exc: None):
        for name in dirs + files:
            fix(os.path.join(folder, name))
    if changed:
        log.warning(
            "the aiflow-nb home %s was readable by other users: made %s file(s) and folder(s) owner-only (%s%s)",
            home,
            changed,
            ", ".join(examples),
            ", ..." if changed > len(examples) else "",
        )
    return changed


def _owner_only(path: Path) -> bool:
    """Clear the group and other bits of ``path`` (not following a link); True if it had any."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False  # gone meanwhile (a run's temp file)
    if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & OWNER_ONLY_UMASK:
        return False
    try:
        os.chmod(path, stat.S_IMODE(mode) & ~OWNER_ONLY_UMASK)
    except OSError as exc:
        log.warning("cannot make %s owner-only: %s", path, exc.strerror or exc)
        return False
    return True


#: The file holding a home's id (see :func:`home_id`).
HOME_ID = "home-id"


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The text of ``path``, made with ``make`` on first use and kept (mode 0600).

    Made exclusively, so two processes starting at once agree on one value;
    a file left empty by a crash is made again.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        found = path.read_text().strip()
        if found:
            return found
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    made = make()
    with os.fdopen(fd, "w") as file:
        file.write(made)
    return made


def home_id(home: Path) -> str:
    """A random id of the home, made on first use and kept.

    What the home puts where other homes may put the same names (a Dask
    cluster two services share) carries it, so their run 1 never meet.
    """
    return kept_secret(home / HOME_ID, lambda: secrets.token_hex(8))
