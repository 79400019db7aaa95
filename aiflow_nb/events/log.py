"""EventLog: append-only events in DuckDB, with offsets and idempotency."""

from __future__ import annotations

import json
import json.scanner
import logging
import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from aiflow_nb.errors import IdempotencyKeyReusedError, InvalidEventError
from aiflow_nb.events.event import EncodedEvents, Event, check_name, encode_many
from aiflow_nb.events.keyfilter import KeyFilter
from aiflow_nb.storage import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    "offset" BIGINT NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    namespace VARCHAR NOT NULL,
    sender VARCHAR,
    context VARCHAR,
    create_time TIMESTAMP NOT NULL,
    idempotency_key VARCHAR
);
CREATE TABLE IF NOT EXISTS event_idempotency (
    idempotency_key VARCHAR PRIMARY KEY,
    "offset" BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_idempotency (
    idempotency_key VARCHAR PRIMARY KEY,
    first_offset BIGINT NOT NULL,
    size INTEGER NOT NULL
);
"""

log = logging.getLogger("aiflow_nb.events")

#: The batch-key filter holds at least this many keys, else four times those in the log at start.
FILTER_MIN_CAPACITY = 1_000_000

#: Events ``[start, start + size)`` of a ``stage`` call sent under one idempotency key (see ``stage``).
BatchKey = tuple[str, int, int]

#: The columns of the events table, in the order :func:`rows_to_events` reads them.
EVENT_COLUMNS = '"offset", key, value, namespace, sender, context, create_time'
_ARROW_SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("key", pa.string()),
        ("value", pa.string()),
        ("namespace", pa.string()),
        ("sender", pa.string()),
        ("context", pa.string()),
        ("idempotency_key", pa.string()),
    ]
)
#: Inserts of fewer rows bind a VALUES list; from _ARROW_ROWS on they go through Arrow (see ``_insert``).
_VALUES_ROWS = 4
_ARROW_ROWS = 500
_EVENTS_INSERT = 'events ("offset", key, value, namespace, sender, context, create_time, idempotency_key)'


def _utc(dt: datetime) -> datetime:
    """Naive UTC, as stored; a naive input is taken to be UTC already."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed is wrong


def _decode(text: str) -> Any:
    """Parse JSON this log wrote (no surrounding whitespace) with the C scanner alone.

    json.loads adds two regex passes and a frame, a large part of the cost of
    a small value; anything the scanner does not consume whole goes to json.loads.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


#: An event as stored: (key, value, namespace, sender, context), value and context as JSON text.
EventRow = tuple[str, str | None, str, str | None, str | None]
_FIELDS = ("key", "value", "namespace", "sender", "context")


def _row(encoded: EncodedEvents, i: int) -> EventRow:
    return (encoded.keys[i], encoded.values[i], encoded.namespaces[i], encoded.senders[i], encoded.contexts[i])


def _canonical(text: str | None) -> str | None:
    """JSON text in one spelling (keys sorted, no spaces), so the same value sent twice compares equal."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text


def _difference(sent: EventRow, original: EventRow | None) -> str | None:
    """The first field in which ``sent`` is not ``original`` (None if it is the same event)."""
    if original is None:
        return "content (the original is not in the log)"
    for n, field in enumerate(_FIELDS):
        a, b = sent[n], original[n]
        if a == b or (field in ("value", "context") and _canonical(a) == _canonical(b)):
            continue
        return field
    return None


def _check_batch(key: str, sent: list[EventRow], original: list[EventRow | None]) -> None:
    """Raise if the events sent again under batch key ``key`` are not those first sent under it."""
    for j, (new, old) in enumerate(zip(sent, original, strict=True)):
        differs = _difference(new, old)
        if differs:
            raise IdempotencyKeyReusedError(
                f"idempotency key {key!r} was already used for other events: event {j + 1} differs in its {differs}"
            )


def rows_to_events(rows: list[tuple[Any, ...]]) -> list[Event]:
    """Rows of :data:`EVENT_COLUMNS` as events (create_time in UTC)."""
    # The scheduler reads every event, so this is on its hot path: events of
    # one append share their create_time, convert each distinct one once.
    times: dict[datetime, datetime] = {}
    events = []
    for offset, key, value, namespace, sender, context, created in rows:
        when = times.get(created)
        if when is None:
            when = times[created] = created.replace(tzinfo=timezone.utc)
        events.append(
            Event(
                key=key,
                value=_decode(value) if value is not None else None,
                namespace=namespace,
                sender=sender,
                context=_decode(context) if context is not None else None,
                offset=offset,
                create_time=when,
            )
        )
    return events


class EventLog:
    """Append-only event log in a DuckDB file.

    Offsets start at 1, strictly increase and are never reused, also after
    the file is reopened.  ``create_time`` is UTC and never goes backwards.

    >>> log = EventLog(":memory:")
    >>> log.append(Event("hour_complete", "10:00"), idempotency_key="h10")
    1
    >>> log.append(Event("hour_complete", "10:00"), idempotency_key="h10")
    1
    >>> [e.value for e in log.read(since=0)]
    ['10:00']
    """

    def __init__(self, db: Database | str | Path) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        with self.db.transaction() as conn:
            conn.execute(SCHEMA)
        #: What the last ``stage`` inserted: (offsets, columns, create_time).
        self._fresh: tuple[list[int], EncodedEvents, datetime] | None = None
        #: Staged in the open transaction, inserted at its commit (or before a read):
        #: one INSERT however many times a transaction stages (each DuckDB statement has a fixed cost).
        self._pending: list[tuple[list[int], EncodedEvents, list[str | None] | None, datetime]] = []
        self._pending_keys: dict[str, int] = {}
        #: Batch keys staged in the open transaction: key -> (first offset, size).
        self._pending_batches: dict[str, tuple[int, int]] = {}
        self._reload()
        self.db.on_rollback(self._reload)
        self.db.before_commit(self._flush)
        #: Which batch keys may be in the log: new keys go into it at once, it is asked once
        #: ``_filter_ready`` (loaded), and it is dropped for good once full.  Both change one way only,
        #: so the loader and the appends need no lock between them.  One EventLog writes a database.
        self._filter: KeyFilter | None = None
        self._filter_ready = False
        self._filter_stop = threading.Event()
        self._filter_thread: threading.Thread | None = None
        self._start_key_filter()
        self.db.on_close(self._stop_key_filter)

    def _reload(self) -> None:
        row = self.db.conn.execute('SELECT max("offset"), max(create_time) FROM events').fetchone()
        assert row is not None
        self._last_offset = int(row[0] or 0)
        self._last_time: datetime = row[1] or datetime(1970, 1, 1)
        self._fresh = None  # a rolled-back append was never appended
        self._pending = []
        self._pending_keys = {}
        self._pending_batches = {}

    def _now(self) -> datetime:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        if now < self._last_time:
            now = self._last_time
        self._last_time = now
        return now

    # -- the batch-key filter --------------------------------------------

    def _start_key_filter(self) -> None:
        """Load the batch keys of the log into a filter, in the background if there are any."""
        row = self.db.conn.execute("SELECT count(*) FROM batch_idempotency").fetchone()
        count = int(row[0]) if row else 0
        self._filter = KeyFilter(max(FILTER_MIN_CAPACITY, 4 * count))
        if count == 0:
            self._filter_ready = True
            return
        # A cursor is a connection of its own: it reads while this one appends.
        cursor = self.db.conn.raw.cursor()
        self._filter_thread = threading.Thread(
            target=self._load_key_filter, args=(cursor, self._filter), name="aiflow-nb-keyfilter", daemon=True
        )
        self._filter_thread.start()

    def _load_key_filter(self, cursor: Any, keys: KeyFilter) -> None:
        # Keys appended meanwhile go into the filter from _flush; it is used once complete.
        try:
            cursor.execute("SELECT idempotency_key FROM batch_idempotency")
            while not self._filter_stop.is_set():
                rows = cursor.fetchmany(20_000)
                if not rows:
                    self._filter_ready = True
                    return
                keys.add_many([k for (k,) in rows])
        except Exception:
            log.exception("could not load the idempotency keys; each is looked up in the database")
        finally:
            cursor.close()

    def _stop_key_filter(self) -> None:
        self._filter_stop.set()
        if self._filter_thread is not None:
            self._filter_thread.join(timeout=30)

    def key_filter_ready(self) -> bool:
        """Whether batch keys that are surely new skip the database look-up."""
        return self._filter is not None and self._filter_ready

    # -- writing ---------------------------------------------------------

    def append(self, event: Event, idempotency_key: str | None = None) -> int:
        """Append one event and return its offset.

        If ``idempotency_key`` is already in the log, nothing is appended and
        the offset of the original event is returned.
        """
        with self.db.transaction():
            (offset,) = self.stage([event], [idempotency_key])
        return offset

    def append_many(
        self,
        events: Sequence[Event],
        idempotency_keys: Sequence[str | None] | None = None,
        *,
        batch_key: str | None = None,
    ) -> list[int]:
        """Append events in one transaction (through Arrow) and return offsets.

        ``batch_key`` makes the whole call idempotent: a retry with the same
        key appends nothing and returns the original offsets.

        >>> log = EventLog(":memory:")
        >>> log.append_many([Event("a"), Event("b")], batch_key="upload-7")
        [1, 2]
        >>> log.append_many([Event("a"), Event("b")], batch_key="upload-7")
        [1, 2]
        """
        with self.db.transaction():
            return self.stage(events, idempotency_keys, [(batch_key, 0, len(events))] if batch_key is not None else ())

    def stage(
        self,
        events: Sequence[Event] | EncodedEvents,
        idempotency_keys: Sequence[str | None] | None = None,
        batch_keys: Sequence[BatchKey] = (),
        *,
        compare: bool = True,
    ) -> list[int]:
        """Append inside the caller's open transaction.

        The scheduler uses this to commit status events together with the
        state changes that caused them.  An event whose idempotency key is
        known is not appended again: its original offset is returned.
        ``batch_keys`` holds ``(key, start, size)``: events ``[start, start +
        size)`` were sent together under ``key`` (the service's group commit
        stages many requests at once); if the key is known, none of them is
        appended and the batch's original offsets are returned.  Events of a
        batch carry no idempotency key of their own.  ``events`` may come
        encoded already (:func:`~aiflow_nb.events.event.encode_rows`, checked).

        A known key answers with the original offsets only for the same events (key, value,
        namespace, sender and context; value and context compared as JSON): other events under
        it raise :class:`IdempotencyKeyReusedError`, so a key taken first by someone else is
        noticed.  ``compare=False`` keeps the original silently (the scheduler's ticks: one per
        due time, whether live or backfilled).
        """
        encoded = events if isinstance(events, EncodedEvents) else encode_many(events)
        count = len(encoded.keys)
        if idempotency_keys is not None and len(idempotency_keys) != count:
            raise InvalidEventError("idempotency_keys must have one entry per event")
        self._fresh = None
        now = self._now()
        keyless = idempotency_keys is None or all(k is None for k in idempotency_keys)
        if keyless and not batch_keys:
            # Fast path: every event is new, offsets are the next ones.
            return self._hold_next(encoded, None, now, [])
        # 0: not known yet; -1: a batch repeated within this call, copied at the end.
        offsets = [0] * count
        new_batches, copies = self._resolve_batches(batch_keys, idempotency_keys, offsets, encoded if compare else None)
        if keyless and not copies and len(new_batches) == len(batch_keys):
            return self._hold_next(encoded, None, now, new_batches)  # every batch is new: the common case
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * count
        for k in keys:
            check_name("idempotency key", k, optional=True)
        known = self._known_keys({k for k, o in zip(keys, offsets, strict=True) if k is not None and not o})
        new_offsets: list[int] = []
        new_rows: list[int] = []
        new_keys: list[str | None] = []
        #: Rows sent again under a known key: (row, offset of the original, its row if in this call).
        repeats: list[tuple[int, int, int | None]] = []
        first_row: dict[str, int] = {}
        for i, key in enumerate(keys):
            if offsets[i]:
                continue
            if key is not None and key in known:
                offsets[i] = known[key]
                repeats.append((i, known[key], first_row.get(key)))
                continue
            self._last_offset += 1
            offset = offsets[i] = self._last_offset
            if key is not None:
                known[key] = offset
                first_row[key] = i
            new_offsets.append(offset)
            new_rows.append(i)
            new_keys.append(key)
        if compare and repeats:
            self._check_repeats(encoded, keys, repeats)
        for start, size, source in copies:
            offsets[start : start + size] = offsets[source : source + size]
        if new_offsets:
            if len(new_rows) < len(keys):
                encoded = EncodedEvents(*([column[i] for i in new_rows] for column in encoded))  # type: ignore[arg-type]
            batches = [(key, offsets[start], size) for key, start, size in new_batches]
            self._hold(new_offsets, encoded, None if keyless else new_keys, now, batches)
        return offsets

    def _hold_next(
        self, encoded: EncodedEvents, keys: list[str | None] | None, now: datetime, batches: list[BatchKey]
    ) -> list[int]:
        """Hold every event as new, at the next offsets (batches' starts become their first offsets)."""
        first = self._last_offset + 1
        self._last_offset += len(encoded.keys)
        offsets = list(range(first, self._last_offset + 1))
        if offsets:
            self._hold(offsets, encoded, keys, now, [(key, first + start, size) for key, start, size in batches])
        return offsets

    def _resolve_batches(
        self,
        batch_keys: Sequence[BatchKey],
        idempotency_keys: Sequence[str | None] | None,
        offsets: list[int],
        encoded: EncodedEvents | None = None,
    ) -> tuple[list[BatchKey], list[tuple[int, int, int]]]:
        """Fill in the offsets of known batches; return the new ones and the repeats within this call.

        With ``encoded``, a known batch's events must be the same as its original's.
        """
        if not batch_keys:
            return [], []
        end = 0
        for key, start, size in sorted(batch_keys, key=lambda b: b[1]):
            check_name("idempotency key", key)
            if size < 1 or start < end or start + size > len(offsets):
                raise InvalidEventError(
                    f"batch {key!r} does not cover a range of the events (start {start}, size {size})"
                )
            if idempotency_keys is not None and any(k is not None for k in idempotency_keys[start : start + size]):
                raise InvalidEventError("an event sent under a batch's idempotency key cannot carry its own")
            end = start + size
        known = self._known_batches({key for key, _, _ in batch_keys})
        new: list[BatchKey] = []
        copies: list[tuple[int, int, int]] = []
        first_seen: dict[str, tuple[int, int]] = {}
        for key, start, size in batch_keys:
            found = known.get(key) or first_seen.get(key)
            if found is not None and found[1] != size:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {key!r} was already used for {found[1]:,} event(s), not {size:,}"
                )
            if key in known:
                first = known[key][0]
                if encoded is not None:
                    stored = self._stored_rows(range(first, first + size))
                    sent = [_row(encoded, start + j) for j in range(size)]
                    _check_batch(key, sent, [stored.get(first + j) for j in range(size)])
                offsets[start : start + size] = range(first, first + size)
            elif key in first_seen:
                if encoded is not None:
                    source = first_seen[key][0]
                    sent = [_row(encoded, start + j) for j in range(size)]
                    _check_batch(key, sent, [_row(encoded, source + j) for j in range(size)])
                offsets[start : start + size] = [-1] * size
                copies.append((start, size, first_seen[key][0]))
            else:
                first_seen[key] = (start, size)
                new.append((key, start, size))
        return new, copies

    def _known_batches(self, keys: set[str]) -> dict[str, tuple[int, int]]:
        """First offset and size of each batch key already appended (or staged)."""
        found = {k: self._pending_batches[k] for k in keys if k in self._pending_batches}
        rest = list(keys - found.keys())
        known = self._filter
        if known is not None and self._filter_ready:
            rest = [k for k in rest if k in known]  # the others are surely new
        if rest:
            rows = self.db.conn.execute(
                "SELECT idempotency_key, first_offset, size FROM batch_idempotency "
                "WHERE idempotency_key IN (SELECT unnest(?))",
                [rest],
            ).fetchall()
            found.update((k, (int(first), int(size))) for k, first, size in rows)
        return found

    def _check_repeats(
        self, encoded: EncodedEvents, keys: Sequence[str | None], repeats: list[tuple[int, int, int | None]]
    ) -> None:
        """Raise if an event sent again under a known key is not the event first sent under it."""
        stored = self._stored_rows([offset for _, offset, row in repeats if row is None])
        for i, offset, row in repeats:
            original = _row(encoded, row) if row is not None else stored.get(offset)
            differs = _difference(_row(encoded, i), original)
            if differs:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {keys[i]!r} was already used for another event (offset {offset}): "
                    f"its {differs} differs"
                )

    def _stored_rows(self, offsets: Iterable[int]) -> dict[int, EventRow]:
        """(key, value, namespace, sender, context) of the events at ``offsets``, staged or committed."""
        wanted = set(offsets)
        found: dict[int, EventRow] = {}
        for held, encoded, _, _ in self._pending:
            for n, offset in enumerate(held):
                if offset in wanted:
                    found[offset] = _row(encoded, n)
        rest = list(wanted - found.keys())
        if rest:
            rows = self.db.conn.execute(
                'SELECT "offset", key, value, namespace, sender, context FROM events '
                'WHERE "offset" IN (SELECT unnest(?))',
                [rest],
            ).fetchall()
            for offset, key, value, namespace, sender, context in rows:
                found[int(offset)] = (key, value, namespace, sender, context)
        return found

    def _hold(
        self,
        offsets: list[int],
        encoded: EncodedEvents,
        keys: list[str | None] | None,
        now: datetime,
        batches: list[BatchKey] | None = None,
    ) -> None:
        """Insert at the commit of the open transaction (at once outside one).

        ``batches``: (key, first offset, size) of the new batches among them.
        """
        self._fresh = (offsets, encoded, now)
        self._pending.append((offsets, encoded, keys, now))
        if keys is not None:
            self._pending_keys.update((k, o) for k, o in zip(keys, offsets, strict=True) if k is not None)
        for key, first, size in batches or ():
            self._pending_batches[key] = (first, size)
        if not self.db.in_transaction:
            self._flush()

    def _flush(self) -> None:
        """Insert what is held: in one statement unless the rows are many and of several create_times."""
        pending, self._pending, self._pending_keys = self._pending, [], {}
        batches, self._pending_batches = self._pending_batches, {}
        if batches:
            firsts = [first for first, _ in batches.values()]
            sizes = [size for _, size in batches.values()]
            self.db.conn.execute(
                "INSERT INTO batch_idempotency (idempotency_key, first_offset, size) "
                "SELECT unnest($1), unnest($2), unnest($3)",
                [list(batches), firsts, sizes],
            )
            self._remember(list(batches))
        if not pending:
            return
        if len(pending) == 1 or (sum(len(p[0]) for p in pending) >= _ARROW_ROWS and len({p[3] for p in pending}) > 1):
            for offsets, encoded, keys, now in pending:
                self._insert(offsets, encoded, keys, [now] * len(offsets))
            return
        keyed = any(p[2] is not None for p in pending)
        self._insert(
            [o for p in pending for o in p[0]],
            EncodedEvents.join([p[1] for p in pending]),
            [k for p in pending for k in (p[2] or [None] * len(p[0]))] if keyed else None,
            [p[3] for p in pending for _ in p[0]],
        )

    def _remember(self, keys: list[str]) -> None:
        """Add appended batch keys to the filter (before the commit: a rollback leaves a harmless extra)."""
        known = self._filter
        if known is None:
            return
        known.add_many(keys)
        if known.full:
            # Its false positives would grow: from now on every key is asked (a restart builds a larger one).
            log.info("%s batch keys since start: looking each up in the database from now on", f"{known.count:,}")
            self._filter = None

    def _known_keys(self, keys: set[str]) -> dict[str, int]:
        if not keys:
            return {}
        held = {k: self._pending_keys[k] for k in keys if k in self._pending_keys}
        if held:
            return {**self._known_keys(keys - held.keys()), **held}
        if len(keys) <= 16:
            # A literal IN list lets DuckDB probe the primary key index; the join
            # below scans the whole table, which grows with the log.
            marks = ", ".join("?" * len(keys))
            sql = f'SELECT idempotency_key, "offset" FROM event_idempotency WHERE idempotency_key IN ({marks})'
            found = self.db.conn.execute(sql, list(keys)).fetchall()
        else:
            found = self.db.conn.execute(
                'SELECT idempotency_key, "offset" FROM event_idempotency WHERE idempotency_key IN (SELECT unnest(?))',
                [list(keys)],
            ).fetchall()
        return {k: int(o) for k, o in found}

    def _insert(
        self, offsets: list[int], encoded: EncodedEvents, keys: Sequence[str | None] | None, times: list[datetime]
    ) -> None:
        """Insert new events (``keys``: their idempotency keys, None for none at all; ``times``: create_time).

        _ARROW_ROWS rows or more must share one create_time (``_flush`` sees to it).  Each
        statement form is the quickest for its size (DuckDB 2.0, one thread): binding each
        value of a VALUES list costs most beyond a few rows, a list per column (unnested)
        up to a few hundred, registering an Arrow table has the highest fixed cost but the
        lowest per row.
        """
        conn = self.db.conn
        n = len(offsets)
        if n < _VALUES_ROWS:
            keys = keys if keys is not None else [None] * n
            rows = zip(offsets, *encoded, keys, times, strict=True)
            params = [x for o, k, v, ns, s, c, ik, t in rows for x in (o, k, v, ns, s, c, t, ik)]
            marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * n)
            conn.execute(f"INSERT INTO {_EVENTS_INSERT} VALUES {marks}", params)
        elif n < _ARROW_ROWS:
            conn.execute(
                f"INSERT INTO {_EVENTS_INSERT} SELECT unnest($1), unnest($2), unnest($3), unnest($4), unnest($5), "
                "unnest($6), unnest($7), unnest($8)",
                [offsets, *encoded, times, keys if keys is not None else [None] * n],
            )
        else:
            self._insert_arrow(offsets, encoded, keys, times[0])
            return
        if keys is not None:
            keyed = [(k, o) for o, k in zip(offsets, keys, strict=True) if k is not None]
            if keyed:
                conn.execute(
                    'INSERT INTO event_idempotency (idempotency_key, "offset") SELECT unnest($1), unnest($2)',
                    [[k for k, _ in keyed], [o for _, o in keyed]],
                )

    def _insert_arrow(
        self, offsets: list[int], encoded: EncodedEvents, keys: Sequence[str | None] | None, time: datetime
    ) -> None:
        conn = self.db.conn
        # Built column by column; create_time is one value, passed as a parameter.
        key_column = pa.nulls(len(offsets), pa.string()) if keys is None else pa.array(keys, pa.string())
        table = pa.Table.from_arrays(
            [
                pa.array(offsets, pa.int64()),
                pa.array(encoded.keys, pa.string()),
                pa.array(encoded.values, pa.string()),
                pa.array(encoded.namespaces, pa.string()),
                pa.array(encoded.senders, pa.string()),
                pa.array(encoded.contexts, pa.string()),
                key_column,
            ],
            schema=_ARROW_SCHEMA,
        )
        conn.register("_aiflow_new_events", table)
        try:
            conn.execute(
                f'INSERT INTO {_EVENTS_INSERT} SELECT "offset", key, value, namespace, sender, context, ?, '
                "idempotency_key FROM _aiflow_new_events",
                [time],
            )
            if keys is not None and any(k is not None for k in keys):
                # One set-based insert: executemany is a round trip per row.
                conn.execute(
                    'INSERT INTO event_idempotency (idempotency_key, "offset") SELECT idempotency_key, "offset" '
                    "FROM _aiflow_new_events WHERE idempotency_key IS NOT NULL"
                )
        finally:
            conn.unregister("_aiflow_new_events")

    def fresh(self, keys: Collection[str]) -> tuple[list[Event], range]:
        """What the last :meth:`stage` appended: as :meth:`read_wanted` would return it, and its offsets.

        Lets the scheduler react to new events without reading them back.
        """
        if self._fresh is None:
            return [], range(0)
        offsets, encoded, now = self._fresh
        rows = [
            row
            for row in zip(offsets, *encoded, [now] * len(offsets), strict=True)
            if row[5] is not None or row[1] in keys
        ]
        return rows_to_events(rows), range(offsets[0], offsets[-1] + 1)  # type: ignore[arg-type]

    # -- reading ---------------------------------------------------------

    @staticmethod
    def _where(since: int, key: str | None, namespace: str | None, sender: str | None) -> tuple[str, list[Any]]:
        clauses = ['"offset" > ?']
        params: list[Any] = [since]
        for column, value in (("key", key), ("namespace", namespace), ("sender", sender)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(clauses), params

    def read(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        """Events with an offset greater than ``since``, oldest first."""
        where, params = self._where(since, key, namespace, sender)
        sql = f'SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY "offset"'
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.db.lock:
            self._flush()  # what this thread's open transaction staged
            rows = self.db.conn.execute(sql, params).fetchall()
        return rows_to_events(rows)

    def read_wanted(self, since: int, until: int, keys: Collection[str], limit: int) -> tuple[list[Event], int]:
        """Events in ``(since, until]`` whose key is in ``keys`` or that carry a context.

        Returns at most ``limit`` of them and the offset up to which every
        event was looked at.  The scheduler reads this way: events no rule
        names are never decoded, and with a few keys DuckDB skips them itself.
        """
        where = '"offset" > ? AND "offset" <= ?'
        params: list[Any] = [since, until]
        in_sql = len(keys) <= 16  # a literal IN list is cheap; a long one costs more than it saves
        if in_sql:
            where += (
                f" AND (context IS NOT NULL OR key IN ({', '.join('?' * len(keys))}))"
                if keys
                else " AND context IS NOT NULL"
            )
            params.extend(keys)
        sql = f'SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY "offset" LIMIT ?'
        with self.db.lock:
            self._flush()
            rows = self.db.conn.execute(sql, [*params, limit]).fetchall()
        through = rows[-1][0] if len(rows) == limit else until
        if not in_sql:
            rows = [r for r in rows if r[5] is not None or r[1] in keys]
        return rows_to_events(rows), through

    def count(
        self,
        since: int = 0,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> int:
        where, params = self._where(since, key, namespace, sender)
        with self.db.lock:
            self._flush()
            row = self.db.conn.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
        assert row is not None
        return int(row[0])

    def offset_at(self, time: datetime) -> int:
        """The last offset created before ``time`` (0 if none).

        ``read(since=log.offset_at(t))`` returns the events from ``t`` on.
        """
        with self.db.lock:
            self._flush()
            row = self.db.conn.execute(
                'SELECT max("offset") FROM events WHERE create_time < ?', [_utc(time)]
            ).fetchone()
        assert row is not None
        return int(row[0] or 0)

    def latest_offset(self) -> int:
        """The offset of the newest committed event (0 for an empty log)."""
        return self._last_offset
