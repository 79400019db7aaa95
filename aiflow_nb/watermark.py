"""Watermark: one event per event-time window a stream has completed.

In a streaming task::

    wm = Watermark(key="hour_complete", every=timedelta(hours=1))
    for row in stream:
        ...
        wm.advance(row.event_time)   # sends hour_complete once per hour passed

Each event's value is the window, ``{"start": ISO, "end": ISO}``.  Windows
are aligned to ``origin`` (the Unix epoch).  The first time seen only sets
where the watermark is; a window is sent once the watermark reaches its
end, in order, and never twice: each event carries an idempotency key made
of the window, and a new Watermark (a restarted task) resumes after the
last window found in the log.

``client`` is the service's :class:`~aiflow_nb.client.Client` by default;
any :class:`~aiflow_nb.workflow.api.AiflowApi` does (an ``Engine`` in a script).

The events are not scoped to the sending execution, so a workflow trigger
(``wf.trigger_on("hour_complete")``) starts one execution per window.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from aiflow_nb.errors import InvalidScheduleError

if TYPE_CHECKING:
    from aiflow_nb.workflow.api import AiflowApi

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidScheduleError(f"{what} must be a datetime, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class Watermark:
    def __init__(
        self,
        key: str = "hour_complete",
        every: timedelta = timedelta(hours=1),
        namespace: str | None = None,
        *,
        origin: datetime = EPOCH,
        client: AiflowApi | None = None,
    ) -> None:
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise InvalidScheduleError(f"Watermark every must be a positive timedelta, got {every!r}")
        if not isinstance(key, str) or not key:
            raise InvalidScheduleError("Watermark key must be a non-empty string")
        from aiflow_nb.client import Client, task_scope

        self.key = key
        self.every = every
        scope = task_scope()
        self.namespace = namespace or (scope["namespace"] if scope else "default")
        self.origin = _aware(origin, "origin")
        self.client = client or Client()
        #: Start of the first window not sent yet (None: not known yet).
        self.next_start: datetime | None = self._resume()

    def _window_start(self, time: datetime) -> datetime:
        return self.origin + ((time - self.origin) // self.every) * self.every

    def _resume(self) -> datetime | None:
        """After the last window of this key found in the log."""
        last: datetime | None = None
        since = 0
        while True:
            events = self.client.events(since=since, limit=10_000, key=self.key, namespace=self.namespace)
            for event in events:
                value = event.value
                if isinstance(value, dict) and isinstance(value.get("end"), str):
                    end = datetime.fromisoformat(value["end"])
                    last = end if last is None or end > last else last
            if len(events) < 10_000:
                return last
            since = events[-1].offset or since

    def advance(self, event_time: datetime) -> list[dict[str, str]]:
        """Move the watermark to ``event_time``; send and return the windows it completed."""
        event_time = _aware(event_time, "event_time")
        if self.next_start is None:
            self.next_start = self._window_start(event_time)
            return []
        sent = []
        while self.next_start + self.every <= event_time:
            window = {"start": self.next_start.isoformat(), "end": (self.next_start + self.every).isoformat()}
            self.client.send_event(
                self.key,
                window,
                self.namespace,
                sender="aiflow.watermark",
                idempotency_key=f"watermark:{self.namespace}/{self.key}/{window['start']}",
            )
            sent.append(window)
            self.next_start += self.every
        return sent
