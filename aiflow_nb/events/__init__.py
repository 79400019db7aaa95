"""The event log: an append-only DuckDB table of events with offsets."""

from aiflow_nb.events.event import DEFAULT_NAMESPACE, MAX_VALUE_BYTES, Event
from aiflow_nb.events.log import EventLog

__all__ = ["DEFAULT_NAMESPACE", "MAX_VALUE_BYTES", "Event", "EventLog"]
