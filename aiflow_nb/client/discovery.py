"""Where the service is: a URL and a token, given or read from the home's ``server.json``."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from aiflow_nb import errors
from aiflow_nb.server import info


@dataclass(frozen=True)
class Endpoint:
    """The service's base URL (no trailing slash) and the token it takes."""

    url: str
    token: str


def check_url(url: str) -> None:
    """Refuse a service URL the client could not use, naming it (``localhost:8888`` lacks ``http://``)."""
    parsed = urllib.parse.urlsplit(url)
    try:
        parsed.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        parsed = parsed._replace(netloc="")
    if parsed.scheme != "http" or not parsed.hostname:
        raise errors.ServiceUnavailableError(f"not an aiflow-nb service URL: {url!r} (expected http://HOST:PORT)")


def find(url: str | None, token: str | None, home: Path) -> Endpoint:
    """The service to talk to: ``url`` and ``token`` when both are given, else ``server.json`` of ``home``.

    A URL given without a token still wins; only the token comes from the file.
    """
    if url:
        check_url(url)
    if url and token:
        return Endpoint(url.rstrip("/"), token)
    server = info.read(home)
    if server is None or not server.alive:
        raise errors.ServiceUnavailableError(
            f"no aiflow-nb service is running for {home}; start one with 'aiflow-nb server start'"
        )
    return Endpoint((url or server.url).rstrip("/"), token or server.token)
