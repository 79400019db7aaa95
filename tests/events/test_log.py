"""The event log: offsets, idempotency, transactions, reads, on a real DuckDB file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aiflow_nb import Event, EventLog
from aiflow_nb.errors import EventTooLargeError, IdempotencyKeyReusedError, InvalidEventError
from aiflow_nb.events import MAX_VALUE_BYTES
from tests.server import wait


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "events.duckdb"


@pytest.fixture
def log(path: Path) -> Iterator[EventLog]:
    log = EventLog(path)
    yield log
    log.db.close()


def reopen(log: EventLog) -> EventLog:
    log.db.close()
    return EventLog(log.db.path)


def stored(log: EventLog) -> list[tuple[int, str, object]]:
    return [(e.offset, e.key, e.value) for e in log.read()]  # type: ignore[misc]


def wait_past(moment: datetime) -> None:
    """Return once the wall clock has moved past ``moment`` (a condition, not a fixed sleep)."""
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while datetime.now(UTC) <= moment:
        assert datetime.now(UTC) < deadline, "the clock did not move"


# -- offsets -----------------------------------------------------------------------


def test_empty_log(log: EventLog) -> None:
    assert log.latest_offset() == 0
    assert log.count() == 0
    assert log.read() == []
    assert log.offset_at(datetime.now(UTC)) == 0


def test_append_returns_increasing_offsets_from_one(log: EventLog) -> None:
    offsets = [log.append(Event(f"k{i}", i)) for i in range(5)]
    assert offsets == [1, 2, 3, 4, 5]
    assert log.latest_offset() == 5
    assert stored(log) == [(i + 1, f"k{i}", i) for i in range(5)]


def test_append_many_returns_consecutive_offsets(log: EventLog) -> None:
    log.append(Event("first"))
    assert log.append_many([Event("a"), Event("b"), Event("c")]) == [2, 3, 4]
    assert log.append_many([]) == []
    assert log.append(Event("last")) == 5
    assert [e.key for e in log.read()] == ["first", "a", "b", "c", "last"]


def test_a_large_batch_can_be_the_first_thing_a_log_stores(log: EventLog) -> None:
    # A batch of 8 or more goes to DuckDB as an Arrow table: the first write of a fresh log, and of a reopened one.
    assert log.append_many([Event("bulk", i) for i in range(1000)]) == list(range(1, 1001))
    log = reopen(log)
    try:
        assert log.append_many([Event("bulk", i) for i in range(1000, 2000)]) == list(range(1001, 2001))
        assert [e.value for e in log.read(since=1995)] == [1995, 1996, 1997, 1998, 1999]
    finally:
        log.db.close()


def test_offsets_are_never_reused_after_reopening(log: EventLog) -> None:
    assert log.append_many([Event("a"), Event("b"), Event("c")]) == [1, 2, 3]
    log = reopen(log)
    try:
        assert log.latest_offset() == 3
        assert log.append(Event("d")) == 4
        assert log.append_many([Event("e")] * 10) == list(range(5, 15))
        log = reopen(log)
        assert log.append(Event("f")) == 15
        offsets = [e.offset for e in log.read()]
        assert offsets == list(range(1, 16))
    finally:
        log.db.close()


def test_concurrent_appends_get_distinct_offsets(log: EventLog) -> None:
    results: list[list[int]] = [[] for _ in range(4)]

    def worker(n: int) -> None:
        for i in range(50):
            results[n].append(log.append(Event("k", {"thread": n, "i": i})))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = sorted(o for r in results for o in r)
    assert everything == list(range(1, 201))
    for r in results:
        assert r == sorted(r)  # each thread sees its own appends in order
    # and each offset holds the event that was given it
    by_offset = {e.offset: e.value for e in log.read()}
    for n, r in enumerate(results):
        assert [by_offset[o] for o in r] == [{"thread": n, "i": i} for i in range(50)]


# -- idempotency ---------------------------------------------------------------------


def test_idempotent_append_returns_the_original_offset(log: EventLog) -> None:
    first = log.append(Event("hour_complete", "10:00"), idempotency_key="h10")
    log.append(Event("other"))
    again = log.append(Event("hour_complete", "10:00"), idempotency_key="h10")
    assert first == again == 1
    assert log.count() == 2
    assert log.latest_offset() == 2
    assert stored(log) == [(1, "hour_complete", "10:00"), (2, "other", None)]
    assert log.append(Event("hour_complete", "11:00"), idempotency_key="h11") == 3


def test_idempotency_survives_reopening(log: EventLog) -> None:
    log.append(Event("k", 1), idempotency_key="once")
    log = reopen(log)
    try:
        assert log.append(Event("k", 1), idempotency_key="once") == 1
        with pytest.raises(IdempotencyKeyReusedError):  # the key is the first event's (issue 26)
            log.append(Event("k", 2), idempotency_key="once")
        assert log.count() == 1
        assert log.append(Event("k", 3)) == 2
    finally:
        log.db.close()


def test_idempotency_inside_append_many(log: EventLog) -> None:
    log.append(Event("old"), idempotency_key="a")
    offsets = log.append_many(
        [Event("x"), Event("old"), Event("y"), Event("y"), Event("z")],
        idempotency_keys=["b", "a", "c", "c", None],
    )
    # "a" exists (offset 1); "c" appears twice in the batch: the second gets the first's offset.
    assert offsets == [2, 1, 3, 3, 4]
    assert log.count() == 4
    assert log.latest_offset() == 4
    assert [e.key for e in log.read()] == ["old", "x", "y", "z"]
    # The keys of that batch are now known too.
    assert log.append_many([Event("x"), Event("y")], idempotency_keys=["b", "c"]) == [2, 3]
    assert log.count() == 4


def test_idempotency_keys_must_match_the_events(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="one entry per event"):
        log.append_many([Event("a"), Event("b")], idempotency_keys=["only-one"])
    with pytest.raises(InvalidEventError, match="idempotency key"):
        log.append(Event("a"), idempotency_key="")
    assert log.count() == 0
    assert log.append(Event("a")) == 1


# -- batch keys: one idempotency key for a whole call -------------------------------


def test_a_batch_key_makes_a_retried_batch_a_no_op(log: EventLog) -> None:
    log.append(Event("before"))
    first = log.append_many([Event("row", 1), Event("row", 2), Event("row", 3)], batch_key="upload-1")
    again = log.append_many([Event("row", 1), Event("row", 2), Event("row", 3)], batch_key="upload-1")
    assert first == again == [2, 3, 4]
    assert log.append_many([Event("row", 4)], batch_key="upload-2") == [5]
    log = reopen(log)
    try:
        assert log.append_many([Event("row", 1), Event("row", 2), Event("row", 3)], batch_key="upload-1") == [2, 3, 4]
        assert stored(log) == [(1, "before", None), (2, "row", 1), (3, "row", 2), (4, "row", 3), (5, "row", 4)]
    finally:
        log.db.close()


def test_a_batch_key_reused_for_another_number_of_events_is_refused(log: EventLog) -> None:
    log.append_many([Event("a"), Event("b")], batch_key="k")
    with pytest.raises(IdempotencyKeyReusedError, match="'k' was already used for 2 event"):
        log.append_many([Event("a")], batch_key="k")
    with pytest.raises(InvalidEventError, match="cannot carry its own"):
        log.append_many([Event("a"), Event("b")], idempotency_keys=["x", None], batch_key="other")
    with pytest.raises(InvalidEventError, match="idempotency key"):
        log.append_many([Event("a")], batch_key="")
    assert stored(log) == [(1, "a", None), (2, "b", None)]
    assert log.append(Event("c")) == 3


def test_batches_staged_together_as_the_service_groups_requests(log: EventLog) -> None:
    log.append_many([Event("old-1"), Event("old-2")], batch_key="old")
    with log.db.transaction():
        offsets = log.stage(
            [Event(k) for k in ("e0", "e1", "e2", "old-1", "old-2", "e1", "e2", "e7")],
            ["own", None, None, None, None, None, None, None],
            # A new batch, a retry of a committed one, a repeat within this group, a request without a key.
            [("new", 1, 2), ("old", 3, 2), ("new", 5, 2)],
        )
    assert offsets == [3, 4, 5, 1, 2, 4, 5, 6]
    assert [e.key for e in log.read(since=2)] == ["e0", "e1", "e2", "e7"]
    # Both the per-event key and the new batch key are known now; staged keys are seen before the commit.
    with log.db.transaction():
        assert log.stage([Event("e0")], ["own"]) == [3]
        assert log.stage([Event("n1"), Event("n2")], None, [("fresh", 0, 2)]) == [7, 8]
        assert log.stage([Event("n1"), Event("n2")], None, [("fresh", 0, 2)]) == [7, 8]
    assert log.append_many([Event("e1"), Event("e2")], batch_key="new") == [4, 5]
    assert log.count() == 8


def test_a_rolled_back_batch_key_is_forgotten(log: EventLog) -> None:
    with pytest.raises(RuntimeError, match="caller failed"), log.db.transaction():
        assert log.stage([Event("lost")], None, [("b", 0, 1)]) == [1]
        raise RuntimeError("caller failed")
    assert log.append_many([Event("kept")], batch_key="b") == [1]
    assert stored(log) == [(1, "kept", None)]


def many_batches(log: EventLog, n: int) -> list[str]:
    """Append ``n`` one-event batches, each under its own key; return the keys."""
    keys = [f"request-{i}" for i in range(n)]
    with log.db.transaction():
        log.stage([Event("row", i) for i in range(n)], None, [(k, i, 1) for i, k in enumerate(keys)])
    return keys


def test_batch_keys_are_found_once_the_log_reopens_and_its_key_filter_loads(log: EventLog) -> None:
    keys = many_batches(log, 20_000)
    log = reopen(log)
    try:
        # Appended while the filter may still be loading: the filter must learn these too.
        late = [log.append_many([Event("late", i)], batch_key=f"late-{i}")[0] for i in range(50)]
        wait(log.key_filter_ready, what="the batch-key filter to load")
        again = [log.append_many([Event("row", i)], batch_key=keys[i])[0] for i in range(0, 20_000, 997)]
        assert again == list(range(1, 20_001, 997))
        assert [log.append_many([Event("late", i)], batch_key=f"late-{i}")[0] for i in range(50)] == late
        assert log.append_many([Event("new")], batch_key="request-new") == [20_051]
        assert log.count() == 20_051
    finally:
        log.db.close()


def test_a_log_closed_while_its_key_filter_loads_stops_loading(log: EventLog) -> None:
    many_batches(log, 100_000)
    log = reopen(log)  # starts loading 100,000 keys
    log.db.close()
    assert not [t for t in threading.enumerate() if t.name == "aiflow-nb-keyfilter"], "a loader outlived close()"
    log = EventLog(log.db.path)
    try:
        assert log.append_many([Event("row", 5)], batch_key="request-5") == [6]
        assert log.count() == 100_000
    finally:
        log.db.close()


@pytest.mark.parametrize("size", [1, 3, 4, 30, 499, 500, 700])
def test_every_insert_size_stores_the_same_rows(log: EventLog, size: int) -> None:
    """Few rows, a few hundred and many take different statements; what is stored is the same."""
    events = [
        Event(
            f"k{i % 3}",
            {"i": i, "text": "é"} if i % 2 else None,
            f"ns{i % 2}",
            f"s{i}" if i % 4 else None,
            {"execution_id": i} if i % 5 == 0 else None,
        )
        for i in range(size)
    ]
    keys = [f"id-{i}" if i % 3 == 0 else None for i in range(size)]
    assert log.append_many(events, idempotency_keys=keys) == list(range(1, size + 1))
    back = log.read()
    assert [(e.key, e.value, e.namespace, e.sender, e.context) for e in back] == [
        (e.key, e.value, e.namespace, e.sender, e.context) for e in events
    ]
    assert len({e.create_time for e in back}) == 1
    assert log.append_many([events[0], Event("again")], idempotency_keys=["id-0", "other"]) == [1, size + 1]


# -- transactions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [Event(""), Event("k", object()), Event("k", "x" * MAX_VALUE_BYTES)],
    ids=["empty-key", "not-json", "too-large"],
)
def test_one_bad_event_stores_nothing_of_its_batch(log: EventLog, bad: Event) -> None:
    log.append(Event("before"))
    batch = [Event("a"), Event("b"), bad, Event("c")]
    with pytest.raises(InvalidEventError):
        log.append_many(batch, idempotency_keys=["ka", "kb", None, "kc"])
    assert log.count() == 1
    assert log.latest_offset() == 1
    # Nothing of the batch was kept, not even its idempotency keys: the retry appends all of it.
    assert log.append_many([Event("a"), Event("b"), Event("c")], idempotency_keys=["ka", "kb", "kc"]) == [2, 3, 4]
    assert [e.key for e in log.read()] == ["before", "a", "b", "c"]


def test_failed_outer_transaction_rolls_back_staged_events(log: EventLog) -> None:
    log.append(Event("kept"))
    with pytest.raises(RuntimeError, match="caller failed"), log.db.transaction():
        assert log.stage([Event("lost-1"), Event("lost-2")], ["l1", None]) == [2, 3]
        raise RuntimeError("caller failed")
    assert log.latest_offset() == 1
    assert stored(log) == [(1, "kept", None)]
    assert log.append(Event("next"), idempotency_key="l1") == 2
    log = reopen(log)
    try:
        assert stored(log) == [(1, "kept", None), (2, "next", None)]
    finally:
        log.db.close()


def test_oversized_event_in_a_batch_is_named(log: EventLog) -> None:
    with pytest.raises(EventTooLargeError, match="'huge'"):
        log.append_many([Event("fine"), Event("huge", "x" * MAX_VALUE_BYTES)])
    assert log.count() == 0


# -- reading -------------------------------------------------------------------------


@pytest.fixture
def mixed(log: EventLog) -> EventLog:
    log.append_many(
        [
            Event("a", 1),  # 1
            Event("b", 2, namespace="ns1"),  # 2
            Event("a", 3, sender="s1"),  # 3
            Event("a", 4, namespace="ns1", sender="s1"),  # 4
            Event("c", 5, sender="s2"),  # 5
            Event("a", 6, namespace="ns1"),  # 6
            Event("b", 7, sender="s1"),  # 7
        ]
    )
    return log


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6, 7]),
        ({"since": 3}, [4, 5, 6, 7]),
        ({"since": 7}, []),
        ({"since": 100}, []),
        ({"limit": 3}, [1, 2, 3]),
        ({"since": 2, "limit": 2}, [3, 4]),
        ({"limit": 0}, []),
        ({"key": "a"}, [1, 3, 4, 6]),
        ({"key": "nope"}, []),
        ({"namespace": "ns1"}, [2, 4, 6]),
        ({"namespace": "default"}, [1, 3, 5, 7]),
        ({"sender": "s1"}, [3, 4, 7]),
        ({"key": "a", "namespace": "ns1"}, [4, 6]),
        ({"key": "a", "sender": "s1", "namespace": "default"}, [3]),
        ({"key": "a", "since": 3}, [4, 6]),
        ({"key": "a", "since": 1, "limit": 2}, [3, 4]),
    ],
)
def test_read_filters(mixed: EventLog, filters: dict[str, object], expected: list[int]) -> None:
    events = mixed.read(**filters)  # type: ignore[arg-type]
    assert [e.offset for e in events] == expected
    assert [e.value for e in events] == expected  # the value of each test event is its offset
    count_filters = {k: v for k, v in filters.items() if k != "limit"}
    if "limit" not in filters:
        assert mixed.count(**count_filters) == len(expected)  # type: ignore[arg-type]


def test_count_ignores_the_limit_but_not_the_filters(mixed: EventLog) -> None:
    assert mixed.count() == 7
    assert mixed.count(since=5) == 2
    assert mixed.count(key="a", namespace="ns1", since=4) == 1
    assert mixed.count(sender="s2") == 1


def test_read_pages_through_the_log(mixed: EventLog) -> None:
    seen: list[int] = []
    since = 0
    while page := mixed.read(since=since, limit=3):
        seen += [e.offset for e in page]  # type: ignore[misc]
        since = page[-1].offset  # type: ignore[assignment]
    assert seen == list(range(1, 8))


# -- time ------------------------------------------------------------------------------


def test_create_time_is_utc_aware_and_non_decreasing(log: EventLog) -> None:
    before = datetime.now(UTC)
    for i in range(20):
        log.append(Event("k", i))
    log.append_many([Event("k", i) for i in range(20, 40)])
    after = datetime.now(UTC)
    times = [e.create_time for e in log.read()]
    assert all(t is not None and t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert before - timedelta(microseconds=1) <= times[0] and times[-1] <= after  # type: ignore[operator]
    # One batch, one time.
    assert len({t for t in times[20:]}) == 1


def test_create_time_does_not_go_backwards_after_reopening(log: EventLog) -> None:
    log.append(Event("a"))
    first = log.read()[0].create_time
    log = reopen(log)
    try:
        log.append(Event("b"))
        second = log.read(since=1)[0].create_time
        assert first is not None and second is not None and second >= first
    finally:
        log.db.close()


def test_offset_at(log: EventLog) -> None:
    log.append_many([Event("a"), Event("b")])
    t1 = log.read()[0].create_time
    assert t1 is not None
    wait_past(t1)
    log.append_many([Event("c"), Event("d")])
    t2 = log.read(since=2)[0].create_time
    assert t2 is not None and t2 > t1

    assert log.offset_at(t1 - timedelta(days=1)) == 0
    assert log.offset_at(t1) == 0  # nothing before the first batch
    assert log.offset_at(t1 + timedelta(microseconds=1)) == 2
    assert log.offset_at(t2) == 2
    assert log.offset_at(t2 + timedelta(microseconds=1)) == 4
    assert log.offset_at(datetime.now(UTC) + timedelta(days=1)) == 4
    # read(since=offset_at(t)) is "the events from t on"
    assert [e.key for e in log.read(since=log.offset_at(t2))] == ["c", "d"]
    assert [e.key for e in log.read(since=log.offset_at(t1))] == ["a", "b", "c", "d"]
    # The same instant in another zone, or naive UTC, means the same thing.
    assert log.offset_at(t2.astimezone(ZoneInfo("Asia/Tokyo"))) == 2
    assert log.offset_at(t2.astimezone(ZoneInfo("America/Los_Angeles"))) == 2
    assert log.offset_at(t2.replace(tzinfo=None)) == 2


def test_latest_offset_tracks_commits_only(log: EventLog) -> None:
    log.append(Event("a"), idempotency_key="a")
    assert log.latest_offset() == 1
    log.append(Event("a"), idempotency_key="a")
    assert log.latest_offset() == 1
    with pytest.raises(InvalidEventError):
        log.append_many([Event("b"), Event("")])
    assert log.latest_offset() == 1
    log.append_many([Event("b"), Event("c")])
    assert log.latest_offset() == 3


# -- volume --------------------------------------------------------------------------


def test_large_batch_reads_back_in_order(log: EventLog) -> None:
    n = 50_000
    events = [Event(f"k{i % 7}", {"i": i}, sender=f"s{i % 3}") for i in range(n)]
    keys = [f"id-{i}" if i % 10 == 0 else None for i in range(n)]
    offsets = log.append_many(events, idempotency_keys=keys)
    assert offsets == list(range(1, n + 1))
    back = log.read()
    assert len(back) == n
    assert [e.offset for e in back] == offsets
    assert [e.value["i"] for e in back] == list(range(n))  # type: ignore[index]
    assert back[12_345].key == "k4" and back[12_345].sender == "s0"
    assert log.count(key="k3") == len(range(3, n, 7))
    assert [e.value["i"] for e in log.read(since=40_000, limit=3)] == [40_000, 40_001, 40_002]  # type: ignore[index]
    # The batch's idempotency keys are all known.
    assert log.append_many([events[0], events[49_990]], idempotency_keys=["id-0", "id-49990"]) == [1, 49_991]
    assert log.latest_offset() == n
