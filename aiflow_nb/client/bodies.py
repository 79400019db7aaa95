"""What the client sends: a JSON body, or a batch of events as NDJSON chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from aiflow_nb import errors
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event, check_name, compact_dumps, encode

#: Events a chunk of a batch sent by ``Client.send_events``: the service checks one chunk
#: while the next is encoded here.
CHUNK_EVENTS = 1000

# What json.dumps(..., separators=(",", ":"), ensure_ascii=False) writes, built once (see compact_dumps).
_dumps = compact_dumps(ensure_ascii=False, allow_nan=True)


def json_body(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; a lone surrogate is escaped, for the service to name the event."""
    try:
        return _dumps(value).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


class Lines:
    """A batch of events as NDJSON chunks, encoded as they are sent and sent the same on a retry."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._source = chunks
        self._made: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        made = self._made
        i = 0
        while True:
            if i == len(made):
                chunk = next(self._source, None)
                if chunk is None:
                    return
                made.append(chunk)
            yield made[i]
            i += 1


def ndjson_chunks(events: Sequence[Event], keys: Sequence[str | None]) -> Iterator[bytes]:
    """The events as lines of JSON, :data:`CHUNK_EVENTS` a chunk.

    Each line names the event first, leaves out the fields at their default,
    then holds the value and the event's idempotency key if it has one; no
    spaces, UTF-8, every line ends with a newline.
    """
    heads: dict[tuple[str, str, str | None], str] = {}
    for start in range(0, len(events), CHUNK_EVENTS):
        lines = []
        for i in range(start, min(start + CHUNK_EVENTS, len(events))):
            event, ident = events[i], keys[i]
            key, namespace, sender = event.key, event.namespace, event.sender
            try:
                if event.context is None and type(key) is str and type(namespace) is str and _name(sender):
                    head = heads.get((key, namespace, sender))
                    if head is None:
                        head = heads[key, namespace, sender] = _head(key, namespace, sender)
                    tail = "}" if ident is None else f',"idempotency_key":{_dumps(ident)}}}'
                    lines.append(head + _dumps(event.value) + tail)
                else:  # the service checks the names and words the error
                    item = {"key": key, "namespace": namespace, "sender": sender, "value": event.value}
                    item.update(context=event.context, idempotency_key=ident)
                    lines.append(_dumps({k: v for k, v in item.items() if v is not None}))
            except (TypeError, ValueError, RecursionError) as exc:
                raise errors.InvalidEventError(f"event {i} ({key!r}) is not JSON-able ({exc})") from None
        lines.append("")  # every line ends with a newline
        try:
            chunk = "\n".join(lines).encode()
        except UnicodeEncodeError:
            i = start + _not_unicode(lines)
            try:  # worded as the service words it: the check that refuses such text is shared
                encode(events[i])
                check_name("idempotency key", keys[i], optional=True)
            except errors.InvalidEventError as exc:
                raise errors.InvalidEventError(f"event {i}: {exc}") from None
            raise
        yield chunk


def _not_unicode(lines: list[str]) -> int:
    """The first of ``lines`` UTF-8 cannot encode (a lone surrogate)."""
    for i, line in enumerate(lines):
        try:
            line.encode()
        except UnicodeEncodeError:
            return i
    return -1


def _name(sender: object) -> bool:
    return sender is None or type(sender) is str


def _head(key: str, namespace: str, sender: str | None) -> str:
    """An event's line up to its value: ``{"key":K[,"namespace":N][,"sender":S],"value":``."""
    head = '{"key":' + _dumps(key)
    if namespace != DEFAULT_NAMESPACE:  # the service's default: less to write and read
        head += ',"namespace":' + _dumps(namespace)
    if sender is not None:
        head += ',"sender":' + _dumps(sender)
    return head + ',"value":'
