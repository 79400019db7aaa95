"""tornado's HTTP server with a cap on open connections, and the limits it runs with.

Past the cap a new connection is closed as soon as it is accepted, and the
refusals are logged once per :data:`REFUSAL_LOG_INTERVAL`, however many
there are.  A connection whose request head has not arrived whole within
the idle timeout is closed by tornado (its ``idle_connection_timeout``,
which is also how long a kept-alive connection may idle).
"""

from __future__ import annotations

import logging
import resource
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.iostream

log = logging.getLogger("aiflow_nb.server.connections")

#: Descriptors kept for the rest of the service (its database, task processes, kernels) beside connections.
RESERVED_DESCRIPTORS = 256
#: The fewest connections the service takes, whatever the descriptor limit.
MIN_CONNECTIONS = 8
#: Refusals are logged at most once in this many seconds.
REFUSAL_LOG_INTERVAL = 10.0
#: The longest a request body may take to arrive (seconds): a batch of up to 64 MiB.
BODY_TIMEOUT = 300.0


def connection_cap(wanted: int, soft: int, hard: int) -> tuple[int, int]:
    """(the connection cap, the descriptor limit to ask for) for ``wanted`` connections.

    The soft descriptor limit is raised as far as the cap needs (up to the
    hard limit); the cap stays below it, so accepting never runs out of
    descriptors (an accept at the limit fails on every turn of the IOLoop).

    >>> connection_cap(1000, 1024, 4096)
    (1000, 1256)
    >>> connection_cap(1000, 512, 512)
    (256, 512)
    """
    unlimited = resource.RLIM_INFINITY
    ceiling = hard if hard != unlimited else wanted + RESERVED_DESCRIPTORS
    limit = max(soft if soft != unlimited else ceiling, min(wanted + RESERVED_DESCRIPTORS, ceiling))
    return max(MIN_CONNECTIONS, min(wanted, limit - RESERVED_DESCRIPTORS)), limit


def apply_descriptor_limit(wanted: int) -> int:
    """Raise this process's soft descriptor limit as far as ``wanted`` connections need; the cap to use."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap, limit = connection_cap(wanted, soft, hard)
    if limit != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        except (ValueError, OSError):
            cap = connection_cap(wanted, soft, soft)[0]
    return cap


class CappedHTTPServer(tornado.httpserver.HTTPServer):
    """tornado's ``HTTPServer`` that serves at most ``max_connections`` connections at a time."""

    def initialize(self, *args: Any, max_connections: int = 1000, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        #: Connections refused since the last log line about them.
        self.refused = 0
        self._next_log = 0.0
        self._report: object | None = None

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[str, int]) -> None:
        if len(self._connections) < self.max_connections:
            super().handle_stream(stream, address)
            return
        stream.close()
        self.refused += 1
        loop = tornado.ioloop.IOLoop.current()
        if loop.time() >= self._next_log:
            self._log_refusals()
        elif self._report is None:
            self._report = loop.call_at(self._next_log, self._log_refusals)

    def _log_refusals(self) -> None:
        self._report = None
        if self.refused:
            log.warning(
                "refused %d connection(s): %d are open, the limit (--max-connections) is %d",
                self.refused,
                len(self._connections),
                self.max_connections,
            )
            self.refused = 0
            self._next_log = tornado.ioloop.IOLoop.current().time() + REFUSAL_LOG_INTERVAL
