"""The line form of ``POST /api/v1/events``: NDJSON, parsed as its chunks arrive.

A client that streams a large batch (``Client.send_events`` does) has its
first events checked and encoded while it is still encoding the rest.
"""

from __future__ import annotations

from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.events.ndjson import loads_line
from aiflow_nb.server.handlers.parse import NOT_FITTING, decode_event, parse_events, parse_sent

#: The media type of the line form.
NDJSON = "application/x-ndjson"


def is_ndjson(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == NDJSON


class LineEvents:
    """The events of an NDJSON body, parsed chunk by chunk.

    Every line is one JSON object with the fields of an event; blank lines
    are skipped; an error names its event (from 0, as in the JSON form) and
    its line (from 1).  The first error stops the
    parsing and is raised by :meth:`result`: the rest of the body is still
    read, so the client gets the answer instead of a reset connection.

    >>> lines = LineEvents()
    >>> lines.feed(b'{"key": "a"}\\n{"key": "b", "val')
    >>> lines.feed(b'ue": 2}\\n')
    >>> lines.result()[0].values
    ['null', '2']
    """

    def __init__(self) -> None:
        self.pending: list[bytes] = []  # the start of a line whose end has not come yet
        self.lines = 0  # lines parsed so far
        self.parts: list[EncodedEvents] = []
        self.keys: list[str | None] = []  # one per event so far
        self.error: InvalidEventError | None = None

    def feed(self, chunk: bytes) -> None:
        if self.error is not None:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            self.pending.append(chunk)
            return
        data = b"".join((*self.pending, chunk[:end])) if self.pending else chunk[:end]
        self.pending = [chunk[end + 1 :]]
        try:
            self._parse(data)
        except InvalidEventError as exc:
            self.error = exc

    def result(self) -> tuple[EncodedEvents, list[str | None]]:
        """The body's events and their idempotency keys; raises the first error."""
        rest = b"".join(self.pending)
        self.pending = []
        if self.error is None and rest.strip():
            try:
                self._parse(rest)
            except InvalidEventError as exc:
                self.error = exc
        if self.error is not None:
            raise self.error
        if not self.parts:
            raise InvalidEventError("the body holds no events (send one JSON object a line)")
        return EncodedEvents.join(self.parts), self.keys

    def _parse(self, data: bytes) -> None:
        first, before = self.lines + 1, len(self.keys)
        lines = data.split(b"\n")
        self.lines += len(lines)
        try:
            items = list(map(decode_event, lines))
        except NOT_FITTING:  # a blank line, or a line that is not an event: each read alone, and worded
            parsed = self._objects(lines, first)
        else:
            parsed = parse_sent(items, lambda i: f"event {before + i} (line {first + i})")
        if parsed is not None:
            self.parts.append(parsed[0])
            self.keys.extend(parsed[1])

    def _objects(self, lines: list[bytes], first: int) -> tuple[EncodedEvents, list[str | None]] | None:
        """Each line read as JSON, then checked and encoded as the JSON form's events are."""
        items: list[Any] = []
        numbers: list[int] = []
        before = len(self.keys)
        for number, raw in enumerate(lines, first):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidEventError(f"line {number}: not UTF-8") from None
            if not line.strip():
                continue
            items.append(loads_line(line, f"event {before + len(items)} (line {number})"))
            numbers.append(number)
        if not items:
            return None
        return parse_events(items, lambda i: f"event {before + i} (line {numbers[i]})")
