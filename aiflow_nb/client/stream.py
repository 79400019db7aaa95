"""Follow the event log with long polls: ``GET /api/v1/events?since=N&wait=S``.

The service answers a long poll as soon as an event after ``since`` is
committed (or after ``wait`` seconds with none), so a follower gets each
event once it is durable and costs one request per answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from aiflow_nb.client.http import Http
from aiflow_nb.errors import ServiceUnavailableError
from aiflow_nb.events.event import Event

log = logging.getLogger("aiflow_nb.client.stream")

#: Events one answer carries at most.
LIMIT = 1000
#: Seconds a poll waits for an event when a ``stop`` is given: how soon a set ``stop`` is noticed.
STOPPABLE_WAIT = 1
#: Seconds a poll waits when nothing stops the stream (the service allows up to 30).
WAIT = 25
#: The pause before polling again after the service did not answer.
PAUSE = 0.5


def follow(http: Http, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
    """Every event after ``since``, then each new one, until ``stop`` is set.

    While the service does not answer (it restarts) the stream keeps asking
    from the last offset it gave; after ``http.retry_for`` seconds without an
    answer it raises :class:`ServiceUnavailableError`.
    """
    wait = WAIT if stop is None else STOPPABLE_WAIT
    failing_since: float | None = None
    while stop is None or not stop.is_set():
        params = {"since": since, "limit": LIMIT, "wait": wait}
        try:
            # Not retried by the call: the stream retries itself, so it notices ``stop`` meanwhile.
            response = http.call("GET", "/events", params=params, timeout=http.timeout + wait)
        except ServiceUnavailableError as exc:
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since > http.retry_for:
                raise
            log.debug("following the events: %s; asking again", exc)
            if stop is not None:
                stop.wait(PAUSE)
            else:
                time.sleep(PAUSE)
            continue
        failing_since = None
        for data in response.json()["events"]:
            event = Event.from_dict(data)
            since = event.offset or since
            yield event
