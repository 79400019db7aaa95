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
windows found in the log.

Anyone with the task token can send events, so the log is read with
suspicion (issue 26): only well-formed windows of this watermark count (its
sender, its window size, aligned to its origin), and a restarted watermark
resumes after the run of consecutive windows that reaches its first event
time, not after the latest window in the log, so a forged window far in
the future does not silence it.  A window whose idempotency key another
event took first is refused by the log; :meth:`Watermark.advance` then
raises instead of believing it sent the window.

``client`` is the service's :class:`~aiflow_nb.client.Client` by default;
any :class:`~aiflow_nb.workflow.api.AiflowApi` does (an ``Engine`` in a script).

The events are not scoped to the sending execution, so a workflow trigger
(``wf.trigger_on("hour_complete")``) starts one execution per window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiflow_nb.errors import IdempotencyKeyReusedError, InvalidScheduleError

if TYPE_CHECKING:
    from aiflow_nb.workflow.api import AiflowApi

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The sender of a watermark's events.
SENDER = "aiflow.watermark"


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidScheduleError(f"{what} must be a datetime, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
        #: Starts of the windows in the log (read once, at start) and of those sent since.
        self._sent = self._own_windows()
        #: Start of the first window not sent yet (None: not known until the first event time).
        self.next_start: datetime | None = None

    def _window_start(self, time: datetime) -> datetime:
        return self.origin + ((time - self.origin) // self.every) * self.every

    def _own_windows(self) -> set[datetime]:
        """The starts of the windows of this watermark found in the log (well-formed ones only)."""
        starts: set[datetime] = set()
        since = 0
        while True:
            events = self.client.events(since=since, limit=10_000, key=self.key, namespace=self.namespace)
            for event in events:
                start = self._window_of(event.sender, event.value)
                if start is not None:
                    starts.add(start)
            if len(events) < 10_000:
                return starts
            since = events[-1].offset or since

    def _window_of(self, sender: str | None, value: object) -> datetime | None:
        """The start of the window ``value`` if it is one this watermark would send, else None."""
        if sender != SENDER or not isinstance(value, dict) or set(value) != {"start", "end"}:
            return None
        try:
            start = _aware(datetime.fromisoformat(value["start"]), "start")
            end = _aware(datetime.fromisoformat(value["end"]), "end")
        except (TypeError, ValueError, InvalidScheduleError):
            return None
        if end - start != self.every or self._window_start(start) != start:
            return None
        return start

    def _resume_at(self, event_time: datetime) -> datetime | None:
        """Where a restarted watermark goes on: after the consecutive windows from the last one that
        starts at or before ``event_time`` (None if there is none).  Windows ahead of the data that
        do not follow on are ignored: a forged one far in the future cannot hold the watermark back."""
        anchor = max((start for start in self._sent if start <= event_time), default=None)
        if anchor is None:
            return None
        while anchor + self.every in self._sent:
            anchor += self.every
        return anchor + self.every

    def advance(self, event_time: datetime) -> list[dict[str, str]]:
        """Move the watermark to ``event_time``; send and return the windows it completed.

        Raises :class:`~aiflow_nb.errors.IdempotencyKeyReusedError` if a window's key was taken by
        another event: that window was not sent, and the watermark stays before it.
        """
        event_time = _aware(event_time, "event_time")
        if self.next_start is None:
            self.next_start = self._resume_at(event_time)
            if self.next_start is None:
                self.next_start = self._window_start(event_time)
                return []
        sent = []
        while self.next_start + self.every <= event_time:
            start = self.next_start
            window = {"start": start.isoformat(), "end": (start + self.every).isoformat()}
            if start not in self._sent:
                self._send(window)
                self._sent.add(start)
                sent.append(window)
            self.next_start += self.every
        return sent

    def _send(self, window: dict[str, str]) -> None:
        ident = f"watermark:{self.namespace}/{self.key}/{window['start']}"
        try:
            self.client.send_event(self.key, window, self.namespace, sender=SENDER, idempotency_key=ident)
        except IdempotencyKeyReusedError as exc:
            raise IdempotencyKeyReusedError(
                f"the window {window['start']} - {window['end']} of {self.namespace}/{self.key} was not sent: "
                f"another event took its idempotency key first ({exc})"
            ) from None
