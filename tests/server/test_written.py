"""Batches read as written: the same events as the full decoding, or None where only it may answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiflow_nb.client import _dumps, ndjson_chunks
from aiflow_nb.events.event import MAX_VALUE_BYTES, EncodedEvents
from aiflow_nb.server.handlers.parse import parse_events
from aiflow_nb.server.handlers.written import WrittenEvents, written_batch
from tests.server.test_lines import VALUES, as_json_form, sample_events

#: Events of every field a batch may carry as written, context aside.
ITEMS: list[dict[str, Any]] = [
    *({"key": "row", "value": value} for value in VALUES),
    *({"key": "elsewhere", "namespace": "team-ä", "value": {"i": i}} for i in range(3)),
    *({"key": "row", "sender": "producer/1", "value": i} for i in range(3)),
    {"key": "all", "namespace": "n", "sender": "s", "value": [1], "idempotency_key": "i-1"},
    {"key": 'k"e\\y', "value": "odd key", "idempotency_key": "i-2"},
]


def decoded(body: bytes) -> tuple[EncodedEvents, list[str | None]]:
    return parse_events(json.loads(body)["events"])


def values(events: EncodedEvents) -> list[Any]:
    return [json.loads(v) for v in events.values]


def test_the_clients_compact_json_form_is_stored_as_decoding_stores_it() -> None:
    body = _dumps({"events": ITEMS}).encode()
    assert written_batch(body) == decoded(body)


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_dumps_spacing_keeps_each_value_as_written(ensure_ascii: bool) -> None:
    # ASCII escapes a character past U+FFFF as a surrogate pair, which is decoded and checked in full.
    items = [item for item in ITEMS if not (ensure_ascii and "\U0001f600" in str(item["value"]))]
    body = json.dumps({"events": items}, ensure_ascii=ensure_ascii).encode() + b"\n"
    written, full = written_batch(body), decoded(body)
    assert written is not None
    (events, keys), (expected, expected_keys) = written, full
    assert keys == expected_keys == [None] * (len(items) - 2) + ["i-1", "i-2"]
    assert events._replace(values=[]) == expected._replace(values=[])
    assert values(events) == values(expected)
    # Written, not encoded again: json.dumps's spacing inside a value stays.
    nested = [1, [2, [3, {"value": "}", "key": "{"}]]]
    assert (
        events.values[values(events).index(nested)] == json.dumps(nested) == '[1, [2, [3, {"value": "}", "key": "{"}]]]'
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":[]}',
        b'{"events":[{"key":"a","value":1},]}',  # a trailing comma
        b'{"events":[{"key":"a","value":1}],"more":1}',
        b'{"events":[{"key":"a","value":1}] }',
        b'{"events":[{"key":"a","value":1} ]}',
        b'{"events":[{"key":"a","value":1}, {"key":"b","value":1}]}',  # two styles
        b'{"events":[{"key":"a","value":1}]}{"events":[{"key":"b","value":1}]}',
        b'{"events":[{"key":"a","value":1,"context":{"execution_id":1}}]}',
        b'{"events":[{"value":1,"key":"a"}]}',  # another order
        b'{"events":[{"key":"a","key":"b","value":1}]}',
        b'{"events":[{"key":"a","value":1,"value":2}]}',
        b'{"events":[{"key":"a","value":1,"idempotency_key":"i","idempotency_key":"j"}]}',
        b'{"events":[{"key":"a","value":NaN}]}',
        b'{"events":[{"key":"a","value":[1,-1e400]}]}',  # read back, Infinity
        b'{"events":[{"key":"a","value":' + b"9" * 400 + b".0}]}",
        b'{"events":[{"key":"a","value":"\\ud800"}]}',
        b'{"events":[{"key":" ","value":1}]}',
        b'{"events":[{"key":"a","namespace":"","value":1}]}',
        b'{"events":[{"key":"a","value":1,"idempotency_key":""}]}',
        b'{"events":[{"key":"a","value":"\xff"}]}',
        b'{"events":[{"key":"a","value":1',
        b'{"key":"a","value":1}',
    ],
)
def test_anything_else_is_left_to_the_full_decoding(body: bytes) -> None:
    assert written_batch(body) is None


def test_a_value_near_the_size_limit_is_left_to_the_full_decoding() -> None:
    body = _dumps({"events": [{"key": "a", "value": "y" * (MAX_VALUE_BYTES // 4)}]}).encode()
    assert written_batch(body) is None
    body = _dumps({"events": [{"key": "a", "value": "y" * (MAX_VALUE_BYTES // 4 - 10)}]}).encode()
    assert written_batch(body) is not None


def test_the_clients_lines_are_taken_as_written() -> None:
    events = [e for e in sample_events() if e.context is None]
    text = b"".join(ndjson_chunks(events, [None] * len(events))).decode()[:-1]
    assert WrittenEvents().read(text, 0, "\n", len(text)) == as_json_form(events, [None] * len(events))


def test_a_value_spread_over_lines_is_not_a_line() -> None:
    text = '{"key":"a","value":[1,\n2]}'
    assert WrittenEvents().read(text, 0, "\n", len(text)) is None
    body = b'{"events":[{"key":"a","value":[1,\n2]}]}'
    written = written_batch(body)  # in the JSON form, whitespace as any other
    assert written is not None and written[0].values == ["[1,\n2]"]
