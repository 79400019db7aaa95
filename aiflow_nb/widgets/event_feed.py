"""The event log, live: the newest events first, filtered by key."""

from __future__ import annotations

import html
import json
from collections import deque
from collections.abc import Iterable

import ipywidgets as widgets  # type: ignore[import-untyped]

from aiflow_nb.client import Client
from aiflow_nb.errors import AiflowError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import Event
from aiflow_nb.widgets.formatting import FIT, html_table, when
from aiflow_nb.widgets.live import LiveWidget


class EventFeed(LiveWidget):
    """The newest events, live, newest first; the filter shows events whose key contains its text.

    The user's events are shown; the service's own (``aiflow.*`` status events) only when
    :attr:`service_events` is ticked (or ``service_events=True``).  ``namespace`` keeps only
    that namespace's events.  It keeps the last ``history`` events and shows at most ``limit``.
    """

    _draw_reads_service = False  # it redraws what it keeps

    def __init__(
        self,
        client: Client,
        key: str | None = None,
        namespace: str | None = None,
        *,
        limit: int = 50,
        history: int = 1000,
        throttle: float = 0.25,
        service_events: bool = False,
    ) -> None:
        super().__init__(client, throttle, layout=FIT)
        self.namespace = namespace
        self.limit = limit
        self.history = history
        whole = {"description_width": "initial"}  # the label in full, not "key contai..."
        self.filter = widgets.Text(value=key or "", placeholder="any key", description="key contains", style=whole)
        self.service_events = widgets.Checkbox(
            value=service_events, description=f"{event_keys.RESERVED_PREFIX}* events", indent=False, style=whole
        )
        self.service_events.layout.width = "auto"
        self.count = widgets.HTML()
        self.table = widgets.HTML(layout={**FIT, "overflow": "auto"})
        self.shown: list[Event] = []
        self._events: deque[Event] = deque(maxlen=history)
        self._since: int | None = None
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.service_events.observe(lambda _: self.refresh(), names="value")
        bar = widgets.HBox(
            [self.filter, self.service_events, self.count],
            layout={**FIT, "flex_flow": "row wrap", "align_items": "center", "grid_gap": "0 12px"},
        )
        self.children = [bar, self.message, self.table]
        try:
            self._since = self._load()
        except AiflowError as exc:
            self._show_error(str(exc))
        self.refresh()
        self._start("events")

    def _load(self) -> int:
        latest = int(self.client.health()["latest_offset"])
        start = max(0, latest - self.history)
        events = self.client.events(since=start, limit=self.history, namespace=self.namespace)
        with self._lock:
            self._events.extend(events)
        return (events[-1].offset or start) if events else start

    def _begin(self) -> int:
        if self._since is None:
            self._since = self._load()
        return self._since

    def _wants(self, event: Event) -> bool:
        if self.namespace is not None and event.namespace != self.namespace:
            return False
        with self._lock:
            self._events.append(event)
        return True

    def _draw(self) -> None:
        text = self.filter.value.strip().lower()
        with self._lock:
            events = list(self._events)
        own = self.service_events.value
        matching = [
            e
            for e in reversed(events)
            if text in e.key.lower() and (own or not e.key.startswith(event_keys.RESERVED_PREFIX))
        ]
        self.shown = matching[: self.limit]
        self.count.value = f"{len(self.shown)} of {len(matching)} matching, {len(events)} kept"
        self.table.value = _event_table(self.shown)


def _event_table(events: Iterable[Event]) -> str:
    rows = []
    for e in events:
        value = e.value if isinstance(e.value, str) else json.dumps(e.value, default=str)
        if len(value) > 200:
            value = value[:200] + "…"
        cells = (str(e.offset), when(e.create_time), e.namespace, e.key, e.sender or "", value)
        rows.append([html.escape(c) for c in cells])
    return html_table(("offset", "time", "namespace", "key", "sender", "value"), rows)
