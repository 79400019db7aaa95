"""The events of a ``POST /api/v1/events`` body, checked and encoded for the log.

The JSON form (one event, or ``{"events": [...]}``) is parsed once the body
is in; the line form (:mod:`.lines`) a chunk at a time.  Both end here.

msgspec decodes a body into :class:`SentEvent` structs, which checks the
fields' names and types on the way; a body they do not fit is decoded as
plain JSON and checked by :func:`parse_events`, which words what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

import msgspec
from tornado import httputil

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE
from aiflow_nb.events.event import (
    SENT_FIELDS,
    EncodedEvents,
    Row,
    check_name,
    check_sent,
    encode_columns,
    encode_rows,
)
from aiflow_nb.server.handlers.base import ApiError, decode_json


class SentEvent(msgspec.Struct, forbid_unknown_fields=True):
    """An event as a sender gives it."""

    key: str
    value: Any = None
    namespace: str | None = None
    sender: str | None = None
    context: dict[str, Any] | None = None
    idempotency_key: str | None = None


class SentBatch(msgspec.Struct, forbid_unknown_fields=True):
    """The JSON form of a batch: ``{"events": [...]}``."""

    events: list[SentEvent]


_ONE = msgspec.json.Decoder(SentEvent).decode
_MANY = msgspec.json.Decoder(SentBatch).decode
#: What a body or line the structs do not fit raises (it is then decoded again, to word it).
NOT_FITTING = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def decode_event(data: bytes) -> SentEvent:
    """One event (a line of the line form); raises one of :data:`NOT_FITTING` if it is not one."""
    return _ONE(data)


def read_json_form(body: bytes) -> tuple[EncodedEvents, list[str | None], bool]:
    """The events of a JSON-form body, their idempotency keys, and whether it was a batch."""
    # No body fits both structs (each forbids the other's field): the likelier is tried first.
    if b'"events"' not in body:
        try:
            return (*_parse_one(_ONE(body)), False)
        except NOT_FITTING:
            pass
    try:
        return (*parse_sent(_MANY(body).events, _event_name), True)
    except NOT_FITTING:
        pass
    try:
        return (*_parse_one(_ONE(body)), False)
    except NOT_FITTING:
        pass
    data = decode_json(body)  # the body as plain JSON: what is wrong is worded below
    many = isinstance(data, dict) and "events" in data
    items = data["events"] if many else [data]
    if not isinstance(items, list) or not items:
        raise ApiError(400, "invalid_event", "'events' must be a non-empty list")
    return (*parse_events(items, _event_name if many else None), many)


def _parse_one(item: SentEvent) -> tuple[EncodedEvents, list[str | None]]:
    """:func:`parse_sent` for the body of one event; the common one (a single request's) without a detour."""
    namespace = item.namespace
    if item.idempotency_key is not None or not (namespace is None or namespace.strip()):
        return parse_sent([item])  # a key or namespace to check first, as parse_events does
    row = (item.key, item.value, namespace or DEFAULT_NAMESPACE, item.sender, item.context)
    return encode_rows([row]), [None]


def _event_name(index: int) -> str:
    return f"event {index}"


def parse_sent(
    items: list[SentEvent], name: Callable[[int], str] | None = None
) -> tuple[EncodedEvents, list[str | None]]:
    """:func:`parse_events` for decoded structs: the common batch column by column, the rest as dicts."""
    if not items:
        raise InvalidEventError("'events' must be a non-empty list")
    if len(items) > 4 and all(item.context is None for item in items):
        keys = [item.idempotency_key for item in items]
        if keys.count(None) == len(keys) or _names_ok(keys):
            events = encode_columns(
                [item.key for item in items],
                [item.value for item in items],
                [item.namespace for item in items],
                [item.sender for item in items],
            )
            if events is not None:
                return events, keys
    return parse_events([msgspec.structs.asdict(item) for item in items], name)


def _names_ok(keys: list[str | None]) -> bool:
    try:
        for key in set(keys):
            check_name("idempotency key", key, optional=True)
    except InvalidEventError:
        return False
    return True


def parse_events(items: list[Any], name: Callable[[int], str] | None = None) -> tuple[EncodedEvents, list[str | None]]:
    """The events of a request's JSON, encoded for the log, and their idempotency keys.

    Checked and encoded in one pass (``encode_rows``), on the IOLoop: a bad
    request fails alone, before it reaches a commit group.  A batch holds up
    to 100,000 events, so nothing here makes a call per event it need not.
    ``name(i)`` words where the i-th item is ("event 3", "line 4") in an error.
    """
    # Column by column pays from a few events on; below that, event by event is cheaper.
    common = _columns(items) if len(items) > 4 else None
    if common is not None:
        return common
    keys: list[str | None] = []
    index = 0

    def rows() -> Iterator[Row]:
        nonlocal index
        add_key = keys.append
        for index, data in enumerate(items):  # noqa: B007  (the index words an error below)
            if type(data) is not dict or not data.keys() <= SENT_FIELDS:
                check_sent(data)  # raises, worded
            get = data.get
            key, namespace = get("idempotency_key"), get("namespace")
            if key is not None or not (namespace is None or (type(namespace) is str and namespace.strip())):
                # Checked here too: a bad key would otherwise fail every request of its commit group.
                check_name("idempotency key", key, optional=True)
                check_name("namespace", namespace, optional=True)  # "" would turn into the default
            add_key(key)
            yield get("key"), get("value"), namespace or DEFAULT_NAMESPACE, get("sender"), get("context")

    try:
        return encode_rows(rows()), keys
    except InvalidEventError as exc:
        raise type(exc)(f"{name(index)}: {exc}" if name else str(exc)) from None


def _columns(items: list[Any]) -> tuple[EncodedEvents, list[str | None]] | None:
    """The common batch (objects of known fields, no context, nothing wrong) column by column, or None."""
    count = len(items)
    if set(map(type, items)) != {dict} or not set().union(*items) <= SENT_FIELDS:
        return None
    get = dict.get
    if list(map(get, items, repeat("context"))).count(None) != count:
        return None
    keys = list(map(get, items, repeat("idempotency_key")))
    if keys.count(None) != count:
        try:
            for key in set(keys):
                check_name("idempotency key", key, optional=True)
        except (TypeError, InvalidEventError):
            return None
    events = encode_columns(
        list(map(get, items, repeat("key"))),
        list(map(get, items, repeat("value"))),
        list(map(get, items, repeat("namespace"))),
        list(map(get, items, repeat("sender"))),
    )
    return None if events is None else (events, keys)


def request_key(headers: httputil.HTTPHeaders, keys: list[str | None]) -> str | None:
    """The ``Idempotency-Key`` header: a retry of the whole request with it appends nothing again."""
    key = headers.get("Idempotency-Key")
    if key is None:
        return None
    check_name("idempotency key", key)
    if any(k is not None for k in keys):
        raise InvalidEventError("send either the Idempotency-Key header or an idempotency_key per event, not both")
    return key
