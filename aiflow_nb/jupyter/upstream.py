"""The Jupyter server's one ``httpx.AsyncClient`` to the service (keep-alive, shared by the handlers)."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from aiflow_nb.server.info import ServerInfo

#: Where the client is kept in the tornado application's settings.
SETTING = "aiflow_nb_upstream"
#: Seconds a call to the service may take (a long poll adds its wait).
TIMEOUT = 60.0


def client(settings: dict[str, Any]) -> httpx.AsyncClient:
    """The application's client, made at first use (on Jupyter's event loop)."""
    found = settings.get(SETTING)
    if found is None:
        # Loopback only: a proxy from the environment must not see the service's token.  Each
        # write goes out at once (a request's head and body are two writes).
        transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        found = settings[SETTING] = httpx.AsyncClient(
            transport=transport, timeout=TIMEOUT, trust_env=False, follow_redirects=False
        )
    assert isinstance(found, httpx.AsyncClient)
    return found


def headers(server: ServerInfo, content_type: str | None = None) -> dict[str, str]:
    """The service's token (the browser only ever sends Jupyter's), and the body's type."""
    sent = {"Authorization": f"token {server.token}"}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return sent
