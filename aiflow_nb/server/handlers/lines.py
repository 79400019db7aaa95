"""The line form of ``POST /api/v1/events``: NDJSON, parsed as its chunks arrive.

A client that streams a large batch (``Client.send_events`` does) has its
first events checked and encoded while it is still encoding the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.events.ndjson import loads_line
from aiflow_nb.server.handlers.parse import parse_events
from aiflow_nb.server.handlers.written import WrittenEvents

#: The media type of the line form.
NDJSON = "application/x-ndjson"

# json.loads's C scanner, called a line at a time: json.loads itself costs twice as much.
# Used on the IOLoop only (its memo is cleared after each call).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


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
        self.written = WrittenEvents()

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
        first = self.lines + 1
        try:
            text = data.decode("utf-8")  # a chunk ends at a newline, never inside a character
        except UnicodeDecodeError as exc:
            number = first + data.count(b"\n", 0, exc.start)
            raise InvalidEventError(f"line {number}: not UTF-8") from None
        self.lines += text.count("\n") + 1
        parsed = self.written.read(text, 0, "\n", len(text))
        if parsed is None:
            parsed = self._objects(text.split("\n"), first)
        if parsed is not None:
            self.parts.append(parsed[0])
            self.keys.extend(parsed[1])

    def _objects(self, lines: list[str], first: int) -> tuple[EncodedEvents, list[str | None]] | None:
        """Each line parsed as a JSON object, then checked and encoded as the JSON form's events are."""
        items: list[Any] = []
        add, scan, blank, before = items.append, _SCAN, 0, len(self.keys)
        for line in lines:
            try:
                item, end = scan(line, 0)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if end != len(line):  # whitespace around the object, a "\r\n" ending, a blank line or an error
                if not line.strip():
                    blank += 1
                    continue
                item = loads_line(line, f"event {before + len(items)} (line {first + len(items) + blank})")
            add(item)
        if not items:
            return None
        if blank:
            numbers = [first + i for i, line in enumerate(lines) if line.strip()]
            return parse_events(items, lambda i: f"event {before + i} (line {numbers[i]})")
        return parse_events(items, lambda i: f"event {before + i} (line {first + i})")
