"""The line form of POST /events (NDJSON): read as the JSON form reads its events, in any chunking."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiflow_nb import Event, errors
from aiflow_nb.client import CHUNK_EVENTS, ndjson_chunks
from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.server.handlers.lines import LineEvents, is_ndjson
from aiflow_nb.server.handlers.parse import parse_events

#: Values a JSON round trip keeps as they are.
VALUES: list[Any] = [
    None,
    0,
    -1.5e-300,
    10**30,
    "",
    "plain",
    'quote " backslash \\ slash / newline \n tab \t nul \x00',
    "é ü 日本 \u2028 \U0001f600",
    [],
    {},
    [1, [2, [3, {"value": "}", "key": "{"}]]],
    {"i": 7, "hour": "2026-11-27T10:00", "nested": {"value": [True, False, None]}},
]


def sample_events() -> list[Event]:
    events = [Event("row", value) for value in VALUES]
    events += [Event("elsewhere", {"i": i}, namespace="team-ä") for i in range(3)]
    events += [Event("row", i, sender="producer/1") for i in range(3)]
    events += [Event('k"e\\y', "odd key"), Event("scoped", 1, context={"execution_id": 3})]
    return events


def read(body: bytes, piece: int | None = None) -> tuple[EncodedEvents, list[str | None]]:
    """What the service makes of ``body`` arriving ``piece`` bytes at a time (all at once if None)."""
    lines = LineEvents()
    size = piece or len(body) or 1
    for start in range(0, len(body), size):
        lines.feed(body[start : start + size])
    return lines.result()


def as_json_form(events: list[Event], keys: list[str | None]) -> tuple[EncodedEvents, list[str | None]]:
    items = []
    for event, key in zip(events, keys, strict=True):
        item = {"key": event.key, "value": event.value, "namespace": event.namespace, "sender": event.sender}
        item.update(context=event.context, idempotency_key=key)
        items.append(json.loads(json.dumps(item)))
    return parse_events(items, lambda i: f"event {i}")


@pytest.mark.parametrize("piece", [None, 1, 7, 4096])
def test_the_clients_lines_are_stored_as_the_json_form_stores_them(piece: int | None) -> None:
    events = sample_events()
    keys: list[str | None] = [None] * len(events)
    body = b"".join(ndjson_chunks(events, keys))
    assert read(body, piece) == as_json_form(events, keys)
    # With an idempotency key per event, some of them.
    keys = [f"id-{i}" if i % 2 else None for i in range(len(events))]
    body = b"".join(ndjson_chunks(events, keys))
    assert read(body, piece) == as_json_form(events, keys)


def test_an_escaped_surrogate_pair_is_a_character_and_a_lone_one_is_refused() -> None:
    pair = b'{"key":"k","value":"\\ud83d\\ude80 \\uD83D\\uDE80"}\n'
    assert read(pair)[0].values == ['"\N{ROCKET} \N{ROCKET}"']
    with pytest.raises(errors.InvalidEventError, match=r"^event 1 \(line 2\): event 'k': value holds '\\ud800'"):
        read(pair + b'{"key":"k","value":"\\ud800"}\n')


def test_a_large_batch_is_written_in_chunks_that_end_with_a_line() -> None:
    events = [Event("row", {"i": i}) for i in range(CHUNK_EVENTS * 2 + 5)]
    chunks = list(ndjson_chunks(events, [None] * len(events)))
    assert len(chunks) == 3
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert [chunk.count(b"\n") for chunk in chunks] == [CHUNK_EVENTS, CHUNK_EVENTS, 5]


def test_hand_written_lines_read_as_their_objects() -> None:
    body = (
        b'{ "value": {"a": 1},  "key": "spaced" }\r\n'
        b"\n"
        b'{"key":"dup","value":1,"value":2}\n'
        b'{"key":"last","value":1,"idempotency_key":"i-1","value":3}\n'
        b'{"sender":"s","key":"order","namespace":"n","value":"x"}'  # no newline at the end
    )
    events, keys = read(body, 5)
    assert events.keys == ["spaced", "dup", "last", "order"]
    assert events.values == ['{"a":1}', "2", "3", '"x"']  # JSON keeps the last of a repeated field
    assert (events.namespaces[3], events.senders[3]) == ("n", "s")
    assert keys == [None, None, "i-1", None]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"key":"a"}\n{"key":"b",\n', "event 1 (line 2), column 12: not valid JSON"),
        (b'{"key":"a"}\n\n[1]\n', "event 1 (line 3): an event must be a JSON object"),
        (b'{"key":"a","value":1}\n{"key":" ","value":1}\n', "event 1 (line 2): event key must be a non-empty"),
        (b'{"key":"a","namespace":"","value":1}\n', "event 0 (line 1): event namespace must be a non-empty"),
        (b'{"key":"a","value":NaN}\n', "event 0 (line 1): event 'a': value is not JSON-able"),
        (b'{"key":"a","value":1}\n{"key":"a","value":1e400}\n', "event 1 (line 2): event 'a': value is not JSON-able"),
        (b'{"key":"a","value":1}}\n', "event 0 (line 1), column 22: not valid JSON (Extra data)"),
        (b'{"key":"a","value":[1,\n2]}\n', "event 0 (line 1), column 23: not valid JSON"),
        (b'{"key":"a","value":1,"idempotency_key":""}\n', "event 0 (line 1): event idempotency key must be"),
        (b'{"key":"a","offset":1}\n', "event 0 (line 1): 'offset' is assigned by the log"),
        (b'{"key":"a","value":' + b"[" * 100_000 + b"\n", "event 0 (line 1): nested too deeply"),
        (b'{"key":"a","value":' + b"9" * 5000 + b"}\n", "event 0 (line 1): not valid JSON here (Exceeds the limit"),
        (b'{"key":"a"}\n{"key":"\xff"}\n', "line 2: not UTF-8"),
        (b"\n \n", "the body holds no events"),
        (b"", "the body holds no events"),
    ],
)
def test_a_bad_line_is_named_by_its_event_and_line(body: bytes, message: str) -> None:
    for piece in (None, 3):
        with pytest.raises(errors.InvalidEventError) as raised:
            read(body, piece)
        assert str(raised.value).startswith(message), str(raised.value)


def test_an_error_in_a_later_chunk_counts_the_events_and_lines_before_it() -> None:
    lines = LineEvents()
    lines.feed(b'{"key":"a","value":1}\n' * 3)
    lines.feed(b'{"key":"a","value":1}\n{"key":5}\n{"key":"a"}\n')
    with pytest.raises(errors.InvalidEventError, match=r"^event 4 \(line 5\): event key must be a non-empty string"):
        lines.result()


def test_an_oversized_value_is_refused_as_in_the_json_form() -> None:
    huge = json.dumps({"key": "big", "value": "y" * (1024 * 1024)}).encode()
    with pytest.raises(errors.EventTooLargeError, match=r"^event 0 \(line 1\): event 'big': value is"):
        read(huge + b"\n", 65536)


def test_the_client_names_an_event_it_cannot_encode() -> None:
    events = [Event("ok", 1)] * (CHUNK_EVENTS + 2) + [Event("bad", {1, 2})]
    with pytest.raises(errors.InvalidEventError, match=rf"^event {CHUNK_EVENTS + 2} \('bad'\) is not JSON-able"):
        list(ndjson_chunks(events, [None] * len(events)))
    lone = r"^event 1: event 'bad': value holds '\\ud800', a lone surrogate"
    with pytest.raises(errors.InvalidEventError, match=lone):
        list(ndjson_chunks([Event("ok"), Event("bad", "\ud800")], [None, None]))
    with pytest.raises(errors.InvalidEventError, match=r"^event 1: event idempotency key 'r\\udc80' holds"):
        list(ndjson_chunks([Event("ok"), Event("bad")], [None, "r\udc80"]))


def test_the_media_type_is_recognised_with_parameters() -> None:
    assert is_ndjson("application/x-ndjson")
    assert is_ndjson("Application/X-NDJSON; charset=utf-8")
    assert not is_ndjson("application/json")
    assert not is_ndjson(None)
