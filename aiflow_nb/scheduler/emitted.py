"""The events the scheduler emits, in order, and their encoding for the log in one pass.

:class:`Emitted` keeps each as an ``(event, idempotency key)`` pair, but a
status event as the plain values it is made of: the event is built only
when it is read, and the log gets it encoded straight from those values.

A status event is made by the scheduler from a submitted workflow's names
and numbers, so it is encoded here directly: its value and context as the
log encodes them, its namespace checked once.  One that carries an error
text (a task's message: anything), one with a name that is not plain ASCII,
and every other event go through the log's own checks
(:func:`~aiflow_nb.events.event.encode_rows`), which word any error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import (
    MAX_NAME_LENGTH,
    MAX_VALUE_BYTES,
    EncodedEvents,
    check_name,
    compact_dumps,
    encode_rows,
)
from aiflow_nb.scheduler.state import (
    ExecutionStatusFields,
    TaskStatusFields,
    execution_status_event_of,
    execution_status_row,
    task_status_event_of,
    task_status_row,
)

#: The log's own encoding of a value or context (the same text).
_dumps = compact_dumps()
_DIRECT = frozenset({event_keys.TASK_STATUS, event_keys.EXECUTION_STATUS})
_LARGE = MAX_VALUE_BYTES // 4

_TASK, _EXECUTION = "task", "execution"
#: The first item of a task or execution status entry (:meth:`Emitted.append_entry`), followed by its fields.
TASK_ENTRY, EXECUTION_ENTRY = _TASK, _EXECUTION
#: (event, idempotency key), or ``_TASK`` or ``_EXECUTION`` followed by a status event's fields, in one
#: tuple (one object per status event kept until the batch is written).
Entry = tuple[Any, ...]


def _event(entry: Entry) -> tuple[Event, str | None]:
    kind = entry[0]
    if kind is _TASK:
        return task_status_event_of(*entry[1:]), None
    if kind is _EXECUTION:
        return execution_status_event_of(*entry[1:]), None
    return kind, entry[1]


def _row(entry: Entry) -> tuple[Any, Any, Any, Any, Any]:
    kind = entry[0]
    if kind is _TASK:
        return task_status_row(*entry[1:])
    if kind is _EXECUTION:
        return execution_status_row(*entry[1:])
    return (kind.key, kind.value, kind.namespace, kind.sender, kind.context)


class Emitted:
    """The events one batch emits, oldest first; reads as ``(event, idempotency key)`` pairs."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def append(self, item: tuple[Event, str | None]) -> None:
        self._entries.append(item)

    def insert(self, position: int, item: tuple[Event, str | None]) -> None:
        self._entries.insert(position, item)

    def task_status(self, fields: TaskStatusFields) -> None:
        """An ``aiflow.task.status`` event (see :func:`.state.task_status_event_of`)."""
        self._entries.append((_TASK, *fields))

    def execution_status(self, fields: ExecutionStatusFields) -> None:
        """An ``aiflow.execution.status`` event (see :func:`.state.execution_status_event_of`)."""
        self._entries.append((_EXECUTION, *fields))

    def append_entry(self, entry: Entry) -> None:
        """A status entry made whole by the caller: ``(TASK_ENTRY, *fields)`` or ``(EXECUTION_ENTRY, *fields)``."""
        self._entries.append(entry)

    def hand_over(self) -> Sequence[Entry]:
        """Every entry, oldest first, for :class:`~.decisions.Decisions` (never changed again); then none."""
        entries = self._entries
        if not entries:
            return ()
        self._entries = []
        return entries

    def extend(self, entries: Iterable[Entry]) -> None:
        self._entries.extend(entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __iter__(self) -> Iterator[tuple[Event, str | None]]:
        return map(_event, self._entries)

    def idempotency_keys(self) -> list[str | None]:
        return [None if e[0] is _TASK or e[0] is _EXECUTION else e[1] for e in self._entries]

    def encoded(self) -> EncodedEvents:
        """Every event's columns for the log, in order (as :func:`~aiflow_nb.events.event.encode_many`)."""
        return _encode([_row(entry) for entry in self._entries])


def _direct(row: tuple[Any, Any, Any, Any, Any], namespaces: set[str]) -> tuple[str, str] | None:
    """(value, context) of a plain status event, or None for the log's checks to take it."""
    key, value, namespace, sender, context = row
    if not (
        key in _DIRECT
        and type(value) is dict
        and value.get("error") is None
        and type(context) is dict
        and type(sender) is str
        and 0 < len(sender) <= MAX_NAME_LENGTH
        and sender.isascii()
        and sender.strip()
    ):
        return None
    if namespace not in namespaces:
        check_name("namespace", namespace)
        namespaces.add(namespace)
    encoded_value, encoded_context = _dumps(value), _dumps(context)
    if not (encoded_value.isascii() and encoded_context.isascii()) or len(encoded_value) > _LARGE:
        return None
    return encoded_value, encoded_context


def encode_emitted(events: Iterable[Event]) -> EncodedEvents:
    """The columns of ``events`` to append, in their order (as :func:`~aiflow_nb.events.event.encode_many`)."""
    return _encode([(e.key, e.value, e.namespace, e.sender, e.context) for e in events])


def _encode(rows: list[tuple[Any, Any, Any, Any, Any]]) -> EncodedEvents:
    namespaces: set[str] = set()
    direct = [_direct(row, namespaces) for row in rows]
    others = [row for row, d in zip(rows, direct, strict=True) if d is None]
    if len(others) == len(rows):
        return encode_rows(others)
    checked = iter(zip(*encode_rows(others), strict=True)) if others else iter(())
    out = EncodedEvents([], [], [], [], [])
    for row, found in zip(rows, direct, strict=True):
        if found is None:
            key, value, namespace, sender, context = next(checked)
        else:
            key, _, namespace, sender, _ = row
            value, context = found
        out.keys.append(key)
        out.values.append(value)
        out.namespaces.append(namespace)
        out.senders.append(sender)
        out.contexts.append(context)
    return out
