"""The event log: an append-only DuckDB table of events with offsets.

``EventLog`` is imported lazily: code that only sends events (clients,
tasks) does not need DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiflow_nb.events.event import DEFAULT_NAMESPACE, MAX_VALUE_BYTES, Event

if TYPE_CHECKING:
    from aiflow_nb.events.log import EventLog

__all__ = ["DEFAULT_NAMESPACE", "MAX_VALUE_BYTES", "Event", "EventLog"]


def __getattr__(name: str) -> Any:
    if name == "EventLog":
        from aiflow_nb.events.log import EventLog

        return EventLog
    raise AttributeError(name)
