"""The local channel to a fork server: a Unix socket in the home, one JSON message each way.

Messages are framed by :mod:`multiprocessing.connection` and encoded by
msgspec; a request may pass file descriptors along (the requester's stdout
and stderr, which a forked kernel writes to as a started one would).
"""

from __future__ import annotations

import os
import socket
from multiprocessing import reduction
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

import msgspec

#: The longest Unix socket path bind and connect take (108 bytes less the terminating NUL, and some margin).
MAX_SOCKET_PATH = 100

_dir_fds: dict[Path, int] = {}


def failed_marker(socket_path: Path) -> Path:
    """Written by a server whose start failed: why (a preload that does not import)."""
    return socket_path.with_name(socket_path.name + ".failed")


def starting_marker(socket_path: Path) -> Path:
    """Held by the process starting a server until it listens (so only one starts it)."""
    return socket_path.with_name(socket_path.name + ".starting")


class ChannelError(OSError):
    """No fork server answered on the socket (none listens, or it went away mid-request)."""


def address(path: Path) -> str:
    """The address to bind or connect ``path`` with.

    A path too long for a Unix socket is reached through this process's
    descriptor of its folder (``/proc/self/fd/N/name``), which is short.
    """
    text = os.fspath(path)
    if len(text.encode()) <= MAX_SOCKET_PATH:
        return text
    folder = path.parent
    fd = _dir_fds.get(folder)
    if fd is None:
        fd = _dir_fds[folder] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{path.name}"


def send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(msgspec.json.encode(message))


def receive(conn: Connection, timeout: float | None) -> dict[str, Any]:
    """The next message on ``conn``, waiting at most ``timeout`` seconds (None: as long as it takes)."""
    if not conn.poll(timeout):
        raise ChannelError(f"no answer within {timeout:g} s")
    try:
        data = conn.recv_bytes()
    except EOFError:
        raise ChannelError("the fork server closed the connection") from None
    message = msgspec.json.decode(data)
    if not isinstance(message, dict):
        raise ChannelError(f"not a message: {data[:80]!r}")
    return message


def send_fds(conn: Connection, fds: list[int]) -> None:
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        reduction.sendfds(sock, fds)


def receive_fds(conn: Connection, count: int) -> list[int]:
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        return list(reduction.recvfds(sock, count))


def request(path: Path, message: dict[str, Any], timeout: float, fds: list[int] | None = None) -> dict[str, Any]:
    """Send ``message`` (and ``fds``) to the server at ``path``; its answer.

    :class:`ChannelError` if no server listens there or it does not answer.
    """
    try:
        conn = Client(address(path), family="AF_UNIX")
    except OSError as exc:
        raise ChannelError(f"no fork server at {path}: {exc.strerror or exc}") from None
    try:
        send(conn, {**message, "fds": len(fds or ())})
        if fds:
            send_fds(conn, fds)
        return receive(conn, timeout)
    except (OSError, EOFError) as exc:
        if isinstance(exc, ChannelError):
            raise
        raise ChannelError(f"the fork server at {path} went away: {exc}") from None
    finally:
        conn.close()


def forget() -> None:
    """Drop the folder descriptors of :func:`address` (a forked child closed them)."""
    _dir_fds.clear()
