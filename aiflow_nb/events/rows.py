"""Events as the log stores them: table rows, and those rows read back as events."""

from __future__ import annotations

import json
import json.scanner
from datetime import UTC, datetime
from typing import Any

from aiflow_nb.events.event import EncodedEvents, Event

#: The columns of the events table, in the order :func:`rows_to_events` reads them.
EVENT_COLUMNS = '"offset", key, value, namespace, sender, context, create_time'

#: An event as stored: (key, value, namespace, sender, context), value and context as JSON text.
EventRow = tuple[str, str | None, str, str | None, str | None]
#: The names of an :data:`EventRow`'s fields, in its order.
ROW_FIELDS = ("key", "value", "namespace", "sender", "context")


def utc(dt: datetime) -> datetime:
    """Naive UTC, as stored; a naive input is taken to be UTC already."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def row_of(encoded: EncodedEvents, i: int) -> EventRow:
    """The ``i``-th of ``encoded`` as it will be stored."""
    return (encoded.keys[i], encoded.values[i], encoded.namespaces[i], encoded.senders[i], encoded.contexts[i])


_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed is wrong


def decode(text: str) -> Any:
    """Parse JSON this log wrote (no surrounding whitespace) with the C scanner alone.

    json.loads adds two regex passes and a frame, a large part of the cost of
    a small value; anything the scanner does not consume whole goes to json.loads.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


def rows_to_events(rows: list[tuple[Any, ...]]) -> list[Event]:
    """Rows of :data:`EVENT_COLUMNS` as events (create_time in UTC)."""
    # The scheduler reads every event, so this is on its hot path: events of
    # one append share their create_time, convert each distinct one once.
    times: dict[datetime, datetime] = {}
    events = []
    for offset, key, value, namespace, sender, context, created in rows:
        when = times.get(created)
        if when is None:
            when = times[created] = created.replace(tzinfo=UTC)
        events.append(
            Event(
                key=key,
                value=decode(value) if value is not None else None,
                namespace=namespace,
                sender=sender,
                context=decode(context) if context is not None else None,
                offset=offset,
                create_time=when,
            )
        )
    return events
