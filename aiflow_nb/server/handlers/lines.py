"""The line form of ``POST /api/v1/events``: NDJSON, parsed as its chunks arrive.

A client that streams a large batch (``Client.send_events`` does) has its
first events checked and encoded while it is still encoding the rest.
"""

from __future__ import annotations

import json
import json.decoder
from collections.abc import Callable
from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE
from aiflow_nb.events.event import MAX_VALUE_BYTES, EncodedEvents, Event, check_name, encode
from aiflow_nb.events.ndjson import loads_line
from aiflow_nb.server.handlers.parse import parse_events

#: The media type of the line form.
NDJSON = "application/x-ndjson"

#: What follows an event's value when it carries an idempotency key of its own.
_KEY_TAIL = ',"idempotency_key":"'

Scan = Callable[[str, int], tuple[Any, int]]
Names = tuple[str, str | None, str | None]

#: json's C string scanner: (text, index after the opening quote) -> (string, index after the closing one).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# json.loads's C scanner, called a line at a time: json.loads itself costs twice as much.
# Used on the IOLoop only (its memo is cleared after each call).
_SCAN: Scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# The same, refusing NaN and Infinity: a value taken as written must be JSON.
_SCAN_VALUE: Scan = json.JSONDecoder(parse_constant=_no_constant).scan_once  # type: ignore[attr-defined]


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
        #: Heads of events seen (the text before the value), with their checked names.
        self._heads: dict[str, Names] = {}

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
        lines = text.split("\n")
        self.lines += len(lines)
        parsed = self._written(lines)
        if parsed is None:
            parsed = self._objects(lines, first)
        if parsed is not None:
            self.parts.append(parsed[0])
            self.keys.extend(parsed[1])

    def _written(self, lines: list[str]) -> tuple[EncodedEvents, list[str | None]] | None:
        """Lines as ``Client.send_events`` writes them, or None.

        ``{"key":K[,"namespace":N][,"sender":S],"value":V[,"idempotency_key":I]}``,
        no space outside V: the names come from the head (checked once per
        head), and the value is stored as written once the scanner has read
        it through, instead of being decoded and encoded again (half of the
        service's work on a batch).  Anything else (other spacing or order,
        a context, a blank line, an error) is parsed as objects instead.
        """
        scan, scanstring = _SCAN_VALUE, _scanstring
        head, size = "", 0
        names: Names = ("", None, None)
        values: list[str] = []
        ids: list[str | None] = []
        names_of: list[Names] = []
        add_value, add_id, add_names = values.append, ids.append, names_of.append
        for line in lines:
            if not (size and line.startswith(head)):
                found = self._head(line)
                if found is None:
                    return None
                head, names = found
                size = len(head)
            try:
                end = scan(line, size)[1]
                last = len(line) - 1
                if end == last and line[last] == "}":
                    ident = None
                elif line.startswith(_KEY_TAIL, end):
                    ident, stop = scanstring(line, end + len(_KEY_TAIL))
                    if stop != last or line[last] != "}":
                        return None
                else:
                    return None
            except (StopIteration, ValueError, RecursionError):
                return None
            add_value(line[size:end])
            add_id(ident)
            add_names(names)
        if not values or max(map(len, values)) > MAX_VALUE_BYTES // 4:
            return None  # a value near the limit: measured exactly by the other path
        text = "".join(values)  # one scan: no value ends with the backslash of an escape
        if "\\ud" in text or "\\uD" in text:
            return None  # the escape of a surrogate, maybe a lone one: decoded and checked by the other path
        if ids.count(None) != len(ids):
            try:
                for ident in set(ids):
                    check_name("idempotency key", ident, optional=True)
            except InvalidEventError:
                return None
        keys, namespaces, senders = (list(column) for column in zip(*names_of, strict=True))
        count = len(values)
        events = EncodedEvents(
            keys,
            values,
            [DEFAULT_NAMESPACE if n is None else n for n in namespaces],
            senders,
            [None] * count,
        )
        return events, ids

    def _head(self, line: str) -> tuple[str, Names] | None:
        """The text of ``line`` before its value, and the names in it (checked), or None."""
        if not line.startswith('{"key":"'):
            return None
        scanstring = _scanstring
        try:
            key, end = scanstring(line, 8)
            namespace = sender = None
            if line.startswith(',"namespace":"', end):
                namespace, end = scanstring(line, end + 14)
            if line.startswith(',"sender":"', end):
                sender, end = scanstring(line, end + 11)
        except ValueError:
            return None
        if not line.startswith(',"value":', end):
            return None
        head = line[: end + 9]
        names = self._heads.get(head)
        if names is None:
            try:
                if namespace is not None:
                    check_name("namespace", namespace)  # "" must not turn into the default
                encode(Event(key, None, DEFAULT_NAMESPACE if namespace is None else namespace, sender))
            except InvalidEventError:
                return None
            names = self._heads[head] = (key, namespace, sender)
        return head, names

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
