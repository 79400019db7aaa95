"""A batch of events as programs write it, read with each value stored as written.

Decoding each value and encoding it again for the log is ~40 % of the
service's reading of a batch (measured: docs/benchmarks.md).  Most batches
are written by a program, member by member in the same order with the same
separators, so the values can be cut out of the body once the scanner has
read them through: the JSON form
``{"events":[...]}`` and the NDJSON lines alike, compact or spaced as
``json.dumps`` spaces them.  Anything else returns None and is decoded and
checked in full instead, which words whatever is wrong.
"""

from __future__ import annotations

import json
import json.decoder
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE
from aiflow_nb.events.event import MAX_VALUE_BYTES, EncodedEvents, Event, check_name, encode

Scan = Callable[[str, int], tuple[Any, int]]
#: An event's key, namespace (None: the default) and sender.
Names = tuple[str, str | None, str | None]
Parsed = tuple[EncodedEvents, list[str | None]]

#: json's C string scanner: (text, index after the opening quote) -> (string, index after the closing one).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e400: Infinity once read, which the log's JSON cannot hold
        raise ValueError(f"{text} is out of range")
    return number


# json's C scanner, refusing what would read as NaN or Infinity: a value taken as written must
# read back as JSON.  Used on the IOLoop only (its memo is cleared after each call).
_SCAN_VALUE: Scan = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite).scan_once  # type: ignore[attr-defined]


class Style(NamedTuple):
    """The text between an event's members, as one writer separates them."""

    comma: str
    key: str  # opens an event
    namespace: str
    sender: str
    value: str
    ident: str  # follows the value when the event carries an idempotency key of its own

    @classmethod
    def of(cls, comma: str, colon: str) -> Style:
        return cls(
            comma,
            '{"key"' + colon + '"',
            comma + '"namespace"' + colon + '"',
            comma + '"sender"' + colon + '"',
            comma + '"value"' + colon,
            comma + '"idempotency_key"' + colon + '"',
        )


#: ``json.dumps(..., separators=(",", ":"))``, as ``Client`` writes.
COMPACT = Style.of(",", ":")
#: ``json.dumps``'s default, as ``requests.post(json=...)`` writes.
SPACED = Style.of(", ", ": ")


def written_batch(body: bytes) -> Parsed | None:
    """The events of a JSON form ``{"events": [...]}`` as written, or None.

    >>> written_batch(b'{"events": [{"key": "a", "value": {"n": 1}}]}')[0].values
    ['{"n": 1}']
    """
    try:
        text = body.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        return None
    if not text.endswith("]}"):
        return None
    for style, opening in ((COMPACT, '{"events":['), (SPACED, '{"events": [')):
        if text.startswith(opening):
            return WrittenEvents().read(text, len(opening), style.comma, len(text) - 2)
    return None


class WrittenEvents:
    """Reads events as written; remembers the names of each head it has checked.

    A head is the text of an event before its value: most events of a batch
    share a few, so each one is checked once.
    """

    def __init__(self) -> None:
        self._heads: dict[str, Names] = {}

    def read(self, text: str, start: int, separator: str, stop: int) -> Parsed | None:
        """The events in ``text[start:stop]``, one after the other with ``separator`` between them, or None.

        Each is ``{"key":K[,"namespace":N][,"sender":S],"value":V[,"idempotency_key":I]}``
        in one style (:data:`COMPACT` or :data:`SPACED`), no context.
        """
        if text.startswith(COMPACT.key, start):
            style = COMPACT
        elif text.startswith(SPACED.key, start):
            style = SPACED
        else:
            return None
        scan, scanstring, startswith = _SCAN_VALUE, _scanstring, text.startswith
        ident_tail = style.ident
        ident_size, separator_size = len(ident_tail), len(separator)
        head, size = "", 0
        names: Names = ("", None, None)
        values: list[str] = []
        ids: list[str | None] = []
        names_of: list[Names] = []
        add_value, add_id, add_names = values.append, ids.append, names_of.append
        at = start
        while True:
            if not (size and startswith(head, at)):
                found = self._head(text, at, style)
                if found is None:
                    return None
                head, names = found
                size = len(head)
            begin = at + size
            try:
                end = scan(text, begin)[1]
                if startswith("}", end):
                    ident, after = None, end + 1
                elif startswith(ident_tail, end):
                    ident, after = scanstring(text, end + ident_size)
                    if not startswith("}", after):
                        return None
                    after += 1
                else:
                    return None
            except (StopIteration, ValueError, RecursionError):
                return None
            add_value(text[begin:end])
            add_id(ident)
            add_names(names)
            if after >= stop:
                if after > stop:
                    return None
                break
            if not startswith(separator, after):
                return None
            at = after + separator_size
        return self._checked(values, ids, names_of, separator)

    @staticmethod
    def _checked(values: list[str], ids: list[str | None], names_of: list[Names], separator: str) -> Parsed | None:
        if max(map(len, values)) > MAX_VALUE_BYTES // 4:
            return None  # a value near the limit: measured exactly by the other path
        text = "".join(values)  # one scan: no value ends with the backslash of an escape
        if "\\ud" in text or "\\uD" in text:
            return None  # the escape of a surrogate, maybe a lone one: decoded and checked by the other path
        if separator == "\n" and "\n" in text:
            return None  # a value spread over lines: not NDJSON, which the other path words
        if ids.count(None) != len(ids):
            try:
                for ident in set(ids):
                    check_name("idempotency key", ident, optional=True)
            except InvalidEventError:
                return None
        keys, namespaces, senders = (list(column) for column in zip(*names_of, strict=True))
        events = EncodedEvents(
            keys,
            values,
            [DEFAULT_NAMESPACE if n is None else n for n in namespaces],
            senders,
            [None] * len(values),
        )
        return events, ids

    def _head(self, text: str, at: int, style: Style) -> tuple[str, Names] | None:
        """The text at ``at`` before an event's value, and the names in it (checked), or None."""
        if not text.startswith(style.key, at):
            return None
        scanstring, startswith = _scanstring, text.startswith
        try:
            key, end = scanstring(text, at + len(style.key))
            namespace = sender = None
            if startswith(style.namespace, end):
                namespace, end = scanstring(text, end + len(style.namespace))
            if startswith(style.sender, end):
                sender, end = scanstring(text, end + len(style.sender))
        except ValueError:
            return None
        if not startswith(style.value, end):
            return None
        head = text[at : end + len(style.value)]
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
