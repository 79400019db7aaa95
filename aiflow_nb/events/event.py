"""The event: what rules react to, and the unit of the log."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from aiflow_nb.errors import EventTooLargeError, InvalidEventError, ValueTooDeepError

#: Largest encoded value (UTF-8 JSON) an event may carry: 1 MiB.
MAX_VALUE_BYTES = 1024 * 1024
#: Deepest nesting of lists and objects in an event's value or context.
MAX_VALUE_DEPTH = 100
#: Longest key, namespace, sender or idempotency key.
MAX_NAME_LENGTH = 1024
DEFAULT_NAMESPACE = "default"
#: The fields of an event a sender gives (``offset`` and ``create_time`` are the log's).
SENT_FIELDS = frozenset({"key", "value", "namespace", "sender", "context", "idempotency_key"})


def compact_dumps(*, ensure_ascii: bool = False, allow_nan: bool = False) -> Callable[[Any], str]:
    """``json.dumps(v, separators=(",", ":"), ensure_ascii=..., allow_nan=...)``, faster.

    json.dumps builds an encoder per call: for a small value that is most of
    the cost of appending an event.  This builds CPython's C encoder once.
    It runs without the circular-reference bookkeeping (which needs fresh
    state per call), so a circular value hits the recursion limit instead
    and is then encoded again the usual way, which raises json's ValueError.
    The output is byte for byte that of json.dumps.
    """
    slow = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan)
    make = getattr(json.encoder, "c_make_encoder", None)
    string = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    try:
        # A private CPython helper: use it only if it behaves as expected here.
        fast = make(None, slow.default, string, None, ":", ",", False, False, allow_nan)  # type: ignore[misc]
        probe = {"a": [1, 2.5, None, True, "é"]}
        if "".join(fast(probe, 0)) != slow.encode(probe):
            return slow.encode
    except Exception:
        return slow.encode

    def dumps(value: Any) -> str:
        if isinstance(value, str):
            return string(value)
        try:
            return "".join(fast(value, 0))
        except RecursionError:
            return slow.encode(value)

    return dumps


_dumps = compact_dumps()


@dataclass
class Event:
    """An event, as AIFlow names it.

    ``value`` is a string or anything JSON can encode.  ``offset`` and
    ``create_time`` are assigned by the log when the event is appended.

    >>> Event("hour_complete", {"hour": "2026-11-27T10:00"}).namespace
    'default'
    """

    key: str
    value: Any = None
    namespace: str = DEFAULT_NAMESPACE
    sender: str | None = None
    context: dict[str, Any] | None = None
    offset: int | None = field(default=None, compare=False)
    create_time: datetime | None = field(default=None, compare=False)

    @property
    def execution_id(self) -> int | None:
        """The workflow execution this event is scoped to, if any."""
        if self.context:
            value = self.context.get("execution_id")
            return int(value) if value is not None else None
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "namespace": self.namespace,
            "sender": self.sender,
            "context": self.context,
            "offset": self.offset,
            "create_time": self.create_time.isoformat() if self.create_time else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        if not isinstance(data, dict):
            raise InvalidEventError("an event must be a JSON object")
        unknown = set(data) - {"key", "value", "namespace", "sender", "context", "offset", "create_time"}
        if unknown:
            raise InvalidEventError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        created = data.get("create_time")
        return cls(
            key=data.get("key"),  # type: ignore[arg-type]  # validated below
            value=data.get("value"),
            namespace=data.get("namespace") or DEFAULT_NAMESPACE,
            sender=data.get("sender"),
            context=data.get("context"),
            offset=data.get("offset"),
            create_time=datetime.fromisoformat(created) if isinstance(created, str) else None,
        )


def check_sent(data: object) -> None:
    """Refuse what is not an event object of the fields a sender gives (the log assigns the others)."""
    if not isinstance(data, dict):
        raise InvalidEventError("an event must be a JSON object with at least a 'key'")
    unknown = data.keys() - SENT_FIELDS
    for assigned in ("offset", "create_time"):
        if assigned in unknown:
            raise InvalidEventError(f"'{assigned}' is assigned by the log; do not send it")
    if unknown:
        raise InvalidEventError(f"unknown event field(s): {', '.join(sorted(unknown))}")


def check_name(what: str, value: object, *, optional: bool = False) -> None:
    """Reject an empty, non-string or overlong key/namespace/sender, or one UTF-8 cannot hold."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"event {what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidEventError(f"event {what} is longer than {MAX_NAME_LENGTH} characters")
    if not value.isascii():
        check_text(value, f"event {what} {value!r}")


def is_text(text: str) -> bool:
    """Whether UTF-8 can hold ``text``, as the log must.

    A lone surrogate cannot: a JSON escape such as ``\\ud800``, or a file
    name ``os.listdir`` could not decode.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: str, what: str) -> None:
    """Refuse what :func:`is_text` refuses, naming ``what`` and the character."""
    if not is_text(text):
        bad = next(c for c in text if not is_text(c))
        raise InvalidEventError(f"{what} holds {bad!r}, a lone surrogate, which is not text")


def may_be_too_deep(encoded: str) -> bool:
    """Whether JSON text ``encoded`` may nest deeper than :data:`MAX_VALUE_DEPTH` (its brackets bound it)."""
    return len(encoded) > 2 * MAX_VALUE_DEPTH and encoded.count("[") + encoded.count("{") > MAX_VALUE_DEPTH


def check_depth(value: Any, encoded: str, what: str) -> None:
    """Refuse a value (encoded as ``encoded``) nested deeper than :data:`MAX_VALUE_DEPTH`.

    >>> check_depth([[1]], "[[1]]", "v")
    >>> deep = []
    >>> for _ in range(MAX_VALUE_DEPTH): deep = [deep]
    >>> check_depth(deep, json.dumps(deep), "v")
    Traceback (most recent call last):
    ...
    aiflow_nb.errors.ValueTooDeepError: v is nested deeper than the limit of 100 levels of lists and objects
    """
    if not may_be_too_deep(encoded):
        return
    level, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_VALUE_DEPTH:
            raise ValueTooDeepError(
                f"{what} is nested deeper than the limit of {MAX_VALUE_DEPTH} levels of lists and objects"
            )
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))


def encode(event: Event) -> tuple[str, str | None]:
    """Validate an event and return its (value, context) as JSON text.

    Raises :class:`InvalidEventError` or :class:`EventTooLargeError`.
    """
    key, namespace, sender = event.key, event.namespace, event.sender
    # The common case inline (this runs for every event appended);
    # check_name decides, and words the error, for anything else.
    if not (
        type(key) is str
        and key.strip()
        and len(key) <= MAX_NAME_LENGTH
        and key.isascii()
        and type(namespace) is str
        and namespace.strip()
        and len(namespace) <= MAX_NAME_LENGTH
        and namespace.isascii()
        and (
            sender is None
            or (type(sender) is str and sender.strip() and len(sender) <= MAX_NAME_LENGTH and sender.isascii())
        )
    ):
        check_name("key", key)
        check_name("namespace", namespace)
        check_name("sender", sender, optional=True)
    try:
        value = _dumps(event.value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEventError(f"event {event.key!r}: value is not JSON-able ({exc})") from None
    if not value.isascii():
        check_text(value, f"event {event.key!r}: value")
    if isinstance(event.value, (dict, list)):
        check_depth(event.value, value, f"event {event.key!r}: value")
    if len(value) > MAX_VALUE_BYTES // 4 and len(value.encode()) > MAX_VALUE_BYTES:
        raise EventTooLargeError(
            f"event {event.key!r}: value is {len(value.encode())} bytes, the limit is {MAX_VALUE_BYTES} bytes (1 MiB)"
        )
    if event.context is None:
        return value, None
    if not isinstance(event.context, dict):
        raise InvalidEventError(f"event {event.key!r}: context must be a JSON object")
    try:
        context = _dumps(event.context)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEventError(f"event {event.key!r}: context is not JSON-able ({exc})") from None
    if not context.isascii():
        check_text(context, f"event {event.key!r}: context")
    check_depth(event.context, context, f"event {event.key!r}: context")
    if len(context) > MAX_VALUE_BYTES // 4 and len(context.encode()) > MAX_VALUE_BYTES:
        raise EventTooLargeError(f"event {event.key!r}: context is larger than 1 MiB")
    return value, context


class EncodedEvents(NamedTuple):
    """The columns of events about to be appended: names as given, value and context as JSON.

    Made by :func:`encode_rows` (or :func:`encode_many`) and parts or joins of those: the log
    takes them as checked.
    """

    keys: list[str]
    values: list[str]
    namespaces: list[str]
    senders: list[str | None]
    contexts: list[str | None]

    @classmethod
    def join(cls, parts: Sequence[EncodedEvents]) -> EncodedEvents:
        """The columns of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        return cls(*([x for part in parts for x in part[i]] for i in range(len(cls._fields))))  # type: ignore[arg-type]


#: An event's fields as given, before any check: (key, value, namespace, sender, context).
Row = tuple[Any, Any, Any, Any, Any]


def encode_many(events: Sequence[Event]) -> EncodedEvents:
    """:func:`encode` for a batch, column by column (see :func:`encode_rows`)."""
    return encode_rows((e.key, e.value, e.namespace, e.sender, e.context) for e in events)


def encode_columns(
    keys: list[Any], values: list[Any], namespaces: list[Any], senders: list[Any]
) -> EncodedEvents | None:
    """:func:`encode_rows` for events without context given as columns, or None.

    The columns as given (a namespace may be None: the default).  Each pass
    is one C-level loop: for a large batch of small events this costs half
    of :func:`encode_rows`.  None means some event is not the common case (a
    bad name or value, a large value): :func:`encode_rows` then words the
    error or takes the event slowly.
    """
    count = len(keys)
    try:
        names = set(zip(keys, namespaces, senders, strict=True))
    except TypeError:  # an unhashable "name"
        return None
    try:
        for key, namespace, sender in names:
            if namespace is not None:
                check_name("namespace", namespace)  # "" must not turn into the default
            encode(Event(key, None, DEFAULT_NAMESPACE if namespace is None else namespace, sender))
        encoded = list(map(_dumps, values))
    except (InvalidEventError, TypeError, ValueError, RecursionError):
        return None
    if not all(map(str.isascii, encoded)) and not all(map(is_text, encoded)):
        return None
    if count and max(map(len, encoded)) > MAX_VALUE_BYTES // 4:
        return None
    if any(map(may_be_too_deep, encoded)):
        return None
    if namespaces.count(None) == count:
        namespaces = [DEFAULT_NAMESPACE] * count
    else:
        namespaces = [DEFAULT_NAMESPACE if n is None else n for n in namespaces]
    return EncodedEvents(keys, encoded, namespaces, senders, [None] * count)


def encode_rows(rows: Iterable[Row]) -> EncodedEvents:
    """:func:`encode` for many events given as field rows, column by column.

    The same checks and errors, in one loop: names are checked once per
    distinct (key, namespace, sender), and anything unusual (an error, a
    large value, a context) goes through :func:`encode` itself.  The
    service feeds it the request's JSON objects directly: no ``Event`` is
    made only to be encoded.

    >>> encode_rows([("hour_complete", {"hour": 10}, "default", None, None)]).values
    ['{"hour":10}']
    """
    out = EncodedEvents([], [], [], [], [])
    add_key, add_value, add_namespace = out.keys.append, out.values.append, out.namespaces.append
    add_sender, add_context = out.senders.append, out.contexts.append
    checked: set[tuple[Any, Any, Any]] = set()
    dumps, large = _dumps, MAX_VALUE_BYTES // 4
    for key, raw, namespace, sender, context in rows:
        names = (key, namespace, sender)
        try:
            known = names in checked
        except TypeError:  # an unhashable "name": encode words the error
            known = False
        if not known:
            encode(Event(key, None, namespace, sender))
            checked.add(names)
        if context is not None:  # the scheduler's status events: encode checks the context too
            value, encoded_context = encode(Event(key, raw, namespace, sender, context))
        else:
            try:
                value = dumps(raw)
            except (TypeError, ValueError, RecursionError):
                value = encode(Event(key, raw, namespace, sender))[0]  # raises, worded
            if len(value) > large or not (value.isascii() or is_text(value)) or may_be_too_deep(value):
                value = encode(Event(key, raw, namespace, sender))[0]  # checks the exact size, words the error
            encoded_context = None
        add_key(key)
        add_value(value)
        add_namespace(namespace)
        add_sender(sender)
        add_context(encoded_context)
    return out
