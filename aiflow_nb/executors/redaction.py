"""Tokens kept out of what a task run saves: its log and its executed notebook.

A task can see a token (``AIFLOW_NB_TOKEN`` on a Dask worker; ``server.json``
and ``task-token`` in the home) and print it by accident (``env``, ``set -x``,
a traceback of a request).  The runner passes everything the run writes to
its log through a :class:`Redactor`, and every save of the executed notebook
through :func:`redact_text`: a token becomes ``[redacted]`` before it is
stored.  A task that means to leak a token can still encode it; this guards
against the accident, not against the task's own code.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

REDACTED = "[redacted]"
#: Shorter values are not treated as secrets (an empty or toy token would blank out ordinary text).
MIN_SECRET_LENGTH = 16


def task_secrets(env: Mapping[str, str], home: Path | None) -> list[str]:
    """The tokens a run may come across: ``AIFLOW_NB_TOKEN``, and the home's service and task tokens."""
    found = {env.get("AIFLOW_NB_TOKEN") or ""}
    if home is not None:
        try:
            found.add(str(json.loads((home / "server.json").read_text()).get("token") or ""))
        except (OSError, ValueError, AttributeError):
            pass
        try:
            found.add((home / "task-token").read_text().strip())
        except OSError:
            pass
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class Redactor:
    """Replaces the secrets in a stream of bytes, also where one is split across two writes.

    :meth:`feed` returns what may be written now; it holds back only a tail
    that could be the start of a secret, until the next feed or :meth:`flush`.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s.encode() for s in secrets]
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        buf = self._held + data
        for secret in self.secrets:
            buf = buf.replace(secret, REDACTED.encode())
        hold = self._partial(buf)
        self._held = buf[len(buf) - hold :] if hold else b""
        return buf[: len(buf) - hold]

    def flush(self) -> bytes:
        out, self._held = self._held, b""
        return out

    def _partial(self, buf: bytes) -> int:
        """The length of the longest end of ``buf`` that begins a secret."""
        for size in range(min(len(buf), max((len(s) for s in self.secrets), default=1) - 1), 0, -1):
            tail = buf[-size:]
            if any(s.startswith(tail) for s in self.secrets):
                return size
        return 0


def redact_output(secrets: list[str]) -> Callable[[], None]:
    """Send this process's stdout and stderr (and so its children's) through a :class:`Redactor`.

    Both go on to where stdout went (the run's ``log.txt``).  Returns the
    function that puts them back and writes what is left (once; later calls do nothing).
    """
    if not secrets:
        return lambda: None
    target = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    redactor = Redactor(secrets)

    def pump() -> None:
        while True:
            try:
                data = os.read(read_end, 65536)
            except OSError:
                data = b""
            _write_all(target, redactor.feed(data) if data else redactor.flush())
            if not data:
                os.close(read_end)
                return

    thread = threading.Thread(target=pump, name="aiflow-nb-redact", daemon=True)
    thread.start()

    done = False

    def finish() -> None:
        nonlocal done
        if done:
            return
        done = True
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(target, 1)  # closes this process's ends of the pipe: the pump reads to the end
        os.dup2(target, 2)
        thread.join(timeout=2.0)  # a child that outlives the run may still hold the pipe open

    return finish


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except OSError:
            return  # the log is gone (disk full): the run goes on
        data = data[written:]
