"""Event validation and encoding, seen through a real DuckDB event log."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import Event, EventLog
from aiflow_nb.errors import EventTooLargeError, InvalidEventError
from aiflow_nb.events import MAX_VALUE_BYTES


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    log = EventLog(tmp_path / "events.duckdb")
    yield log
    log.db.close()


def _string_of_encoded_size(size: int, char: str = "x") -> str:
    """A str whose JSON encoding (quotes included) is exactly ``size`` bytes."""
    width = len(char.encode())
    assert (size - 2) % width == 0
    value = char * ((size - 2) // width)
    assert len(json.dumps(value, ensure_ascii=False).encode()) == size
    return value


@pytest.mark.parametrize("key", ["", "   ", None, 42, b"bytes"])
def test_key_must_be_a_non_empty_string(log: EventLog, key: Any) -> None:
    with pytest.raises(InvalidEventError, match="key"):
        log.append(Event(key))
    assert log.count() == 0
    assert log.latest_offset() == 0


@pytest.mark.parametrize("field", ["namespace", "sender"])
def test_namespace_and_sender_must_not_be_empty(log: EventLog, field: str) -> None:
    with pytest.raises(InvalidEventError, match=field):
        log.append(Event("k", **{field: ""}))
    assert log.count() == 0


def test_overlong_key_is_rejected(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="key is longer than"):
        log.append(Event("k" * 1025))
    assert log.append(Event("k" * 1024)) == 1


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, b"bytes", {"when": Path("/tmp")}, math.nan, [math.inf]],
    ids=["object", "set", "bytes", "nested-path", "nan", "inf"],
)
def test_value_must_be_json_able(log: EventLog, value: Any) -> None:
    with pytest.raises(InvalidEventError, match=r"'k'.*not JSON-able"):
        log.append(Event("k", value))
    assert log.count() == 0


@pytest.mark.parametrize("context", ["execution 1", [1], {"execution_id": object()}])
def test_context_must_be_a_json_object(log: EventLog, context: Any) -> None:
    with pytest.raises(InvalidEventError, match="context"):
        log.append(Event("k", context=context))
    assert log.count() == 0


def test_oversized_value_names_its_size_and_the_limit(log: EventLog) -> None:
    value = _string_of_encoded_size(MAX_VALUE_BYTES + 2)
    with pytest.raises(EventTooLargeError) as info:
        log.append(Event("big", value))
    message = str(info.value)
    assert "'big'" in message
    assert str(MAX_VALUE_BYTES + 2) in message
    assert str(MAX_VALUE_BYTES) in message
    assert isinstance(info.value, InvalidEventError)
    assert log.count() == 0


def test_size_limit_counts_utf8_bytes_not_characters(log: EventLog) -> None:
    # 4-byte characters: far fewer characters than the limit, but too many bytes.
    value = _string_of_encoded_size(MAX_VALUE_BYTES + 2, char="\N{GRINNING FACE}")
    assert len(value) < MAX_VALUE_BYTES // 2
    with pytest.raises(EventTooLargeError, match=str(MAX_VALUE_BYTES + 2)):
        log.append(Event("emoji", value))
    assert log.count() == 0


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (Event("k", "\ud800"), r"event 'k': value holds '\\ud800', a lone surrogate"),
        (Event("k", {"file": "caf\udce9.csv"}), r"value holds '\\udce9'"),
        (Event("k", 1, context={"a": ["\udfff"]}), r"event 'k': context holds '\\udfff'"),
        (Event("k\udc80"), r"event key 'k\\udc80' holds '\\udc80'"),
        (Event("k", namespace="n\udc80"), r"event namespace 'n\\udc80' holds"),
        (Event("k", sender="s\udc80"), r"event sender 's\\udc80' holds"),
    ],
)
def test_text_utf8_cannot_hold_is_refused_and_log_unchanged(log: EventLog, event: Event, named: str) -> None:
    # A lone surrogate (a JSON "\ud800" escape, a file name os.listdir could not decode) cannot be stored.
    log.append(Event("before", "café 🚀"))  # non-ASCII text that is text is fine
    with pytest.raises(InvalidEventError, match=named):
        log.append(event)
    with pytest.raises(InvalidEventError, match=named):
        log.append_many([Event("ok", i) for i in range(6)] + [event])  # the column path for a batch
    assert [(e.key, e.value) for e in log.read(since=0)] == [("before", "café 🚀")]


@pytest.mark.parametrize("char", ["x", "\N{LATIN SMALL LETTER E WITH ACUTE}"])
def test_value_at_exactly_the_limit_is_accepted(log: EventLog, char: str) -> None:
    value = _string_of_encoded_size(MAX_VALUE_BYTES, char)
    offset = log.append(Event("edge", value))
    (event,) = log.read()
    assert event.offset == offset
    assert event.value == value
    with pytest.raises(EventTooLargeError):
        log.append(Event("edge", value + char))
    assert log.count() == 1


def test_oversized_json_value_is_rejected(log: EventLog) -> None:
    value = {"rows": ["y" * 1000] * (MAX_VALUE_BYTES // 1000 + 1)}
    with pytest.raises(EventTooLargeError, match="limit"):
        log.append(Event("rows", value))
    assert log.count() == 0


def test_oversized_context_is_rejected(log: EventLog) -> None:
    with pytest.raises(EventTooLargeError, match="context"):
        log.append(Event("k", context={"blob": "z" * MAX_VALUE_BYTES}))
    assert log.count() == 0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "hello",
        '{"a": 1}',  # a str that looks like JSON stays a str
        "null",
        "42",
        'h\N{LATIN SMALL LETTER E WITH ACUTE}llo \N{GRINNING FACE}\n\t"quoted"',
        0,
        -7,
        2**62,
        3.25,
        True,
        False,
        [],
        [1, "two", None, [3.5]],
        {},
        {"hour": "2026-11-27T10:00", "rows": 1200, "ok": True, "nested": {"list": [1, 2]}},
    ],
)
def test_values_round_trip_with_their_type(log: EventLog, value: Any) -> None:
    log.append(Event("k", value))
    (event,) = log.read()
    assert event.value == value
    assert type(event.value) is type(value)


def test_every_field_round_trips(log: EventLog) -> None:
    sent = Event("hour_complete", {"hour": 10}, namespace="stream", sender="watermark", context={"execution_id": 7})
    offset = log.append(sent)
    (got,) = log.read()
    assert got == sent
    assert (got.key, got.value, got.namespace, got.sender, got.context) == (
        "hour_complete",
        {"hour": 10},
        "stream",
        "watermark",
        {"execution_id": 7},
    )
    assert got.offset == offset
    assert got.execution_id == 7
    assert sent.offset is None  # the log does not change the caller's object


def test_defaults() -> None:
    event = Event("k")
    assert (event.value, event.namespace, event.sender, event.context) == (None, "default", None, None)
    assert event.execution_id is None


def test_to_dict_and_from_dict_round_trip(log: EventLog) -> None:
    log.append(Event("k", [1, {"a": "b"}], namespace="ns", sender="s", context={"execution_id": 3}))
    (event,) = log.read()
    data = json.loads(json.dumps(event.to_dict()))
    back = Event.from_dict(data)
    assert back == event
    assert back.offset == event.offset
    assert back.create_time == event.create_time


def test_from_dict_rejects_unknown_fields_and_non_objects() -> None:
    with pytest.raises(InvalidEventError, match="colour"):
        Event.from_dict({"key": "k", "colour": "red"})
    with pytest.raises(InvalidEventError, match="JSON object"):
        Event.from_dict(["k"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        Event(["x"]),  # type: ignore[arg-type]
        Event(""),
        Event("k", object()),
        Event("k", float("nan")),
        Event("k", "x" * (MAX_VALUE_BYTES + 1)),
        Event("k", 1, context=[1]),  # type: ignore[arg-type]
        Event("k", 1, namespace=" "),
        Event("k", 1, sender=""),
    ],
    ids=["list-key", "empty-key", "object", "nan", "too-large", "context-list", "blank-namespace", "empty-sender"],
)
def test_a_batch_rejects_a_bad_event_as_a_single_append_does(event: Event) -> None:
    from aiflow_nb.events.event import encode, encode_many

    with pytest.raises((InvalidEventError, EventTooLargeError)) as single:
        encode(event)
    with pytest.raises(type(single.value), match=re.escape(str(single.value))):
        encode_many([Event("fine"), event])


def test_a_batch_encodes_as_single_events_do() -> None:
    from aiflow_nb.events.event import encode, encode_many

    events = [
        Event("k", {"a": 1}, context={"execution_id": 3}),
        Event("k", "é", sender="s"),
        Event("j", [1, 2.5, None]),
    ]
    encoded = encode_many(events)
    assert list(zip(encoded.values, encoded.contexts, strict=True)) == [encode(e) for e in events]
    assert (encoded.keys, encoded.namespaces, encoded.senders) == (["k", "k", "j"], ["default"] * 3, [None, "s", None])


def test_rows_encode_as_events_do_and_join_in_order() -> None:
    from aiflow_nb.events.event import EncodedEvents, encode_many, encode_rows

    events = [Event("k", {"a": 1}, context={"execution_id": 3}), Event("k", "é", sender="s"), Event("j", [1])]
    rows = [(e.key, e.value, e.namespace, e.sender, e.context) for e in events]
    assert encode_rows(rows) == encode_many(events)
    with pytest.raises(InvalidEventError, match="non-empty string"):
        encode_rows([*rows, ("", 1, "default", None, None)])
    first, second = encode_rows(rows[:1]), encode_rows(rows[1:])
    assert EncodedEvents.join([first, second]) == encode_many(events)
    assert EncodedEvents.join([first]) is first


def test_columns_encode_as_rows_do_or_leave_the_wording_to_them() -> None:
    from aiflow_nb.events.event import encode_columns, encode_rows

    keys = ["k", "k", "j", "k"]
    values = [{"a": 1}, "é", [1, None], None]
    namespaces = [None, "ns", None, None]
    senders = [None, "s", None, None]
    expected = encode_rows(
        (k, v, n or "default", s, None) for k, v, n, s in zip(keys, values, namespaces, senders, strict=True)
    )
    assert encode_columns(keys, values, namespaces, senders) == expected
    # Anything the rows must word or measure: no columns.
    for column, index, bad in [
        (keys, 1, ""),
        (keys, 0, ["unhashable"]),
        (namespaces, 2, ""),
        (senders, 3, 5),
        (values, 0, {1, 2}),
        (values, 1, math.nan),
        (values, 2, "y" * (MAX_VALUE_BYTES // 4 + 1)),
    ]:
        changed = list(column)
        changed[index] = bad
        given = [changed if c is column else c for c in (keys, values, namespaces, senders)]
        assert encode_columns(*given) is None, (index, bad)
