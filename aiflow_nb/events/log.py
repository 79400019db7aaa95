"""EventLog: append-only events in DuckDB, with offsets and idempotency.

The parts: :mod:`.rows` (events as stored and read back), :mod:`.writes`
(the tables, and the insert at a transaction's commit), :mod:`.idempotency`
(which keys are known).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events.event import EncodedEvents, Event, check_name, encode_many
from aiflow_nb.events.idempotency import FILTER_MIN_CAPACITY, BatchKey, KnownKeys
from aiflow_nb.events.rows import EVENT_COLUMNS, rows_to_events, utc
from aiflow_nb.events.writes import SCHEMA, HeldWrites
from aiflow_nb.storage import Database

__all__ = ["EVENT_COLUMNS", "FILTER_MIN_CAPACITY", "SCHEMA", "BatchKey", "EventLog", "rows_to_events"]


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
        #: Staged in the open transaction, inserted at its commit (or before a read).
        self._writes = HeldWrites(self.db)
        self._keys = KnownKeys(self.db, self._writes.rows)
        self._reload()
        self.db.on_rollback(self._reload)
        self.db.before_commit(self._flush)
        self._keys.start_filter()
        self.db.on_close(self._keys.stop_filter)

    def _reload(self) -> None:
        row = self.db.conn.execute('SELECT max("offset"), max(create_time) FROM events').fetchone()
        assert row is not None
        self._last_offset = int(row[0] or 0)
        self._last_time: datetime = row[1] or datetime(1970, 1, 1)
        self._fresh = None  # a rolled-back append was never appended
        self._writes.clear()
        self._keys.clear()

    def _now(self) -> datetime:
        now = datetime.now(UTC).replace(tzinfo=None)
        if now < self._last_time:
            now = self._last_time
        self._last_time = now
        return now

    def key_filter_ready(self) -> bool:
        """Whether batch keys that are surely new skip the database look-up."""
        return self._keys.filter is not None and self._keys.filter_ready

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
        new_batches, copies = self._keys.resolve_batches(
            batch_keys, idempotency_keys, offsets, encoded if compare else None
        )
        if keyless and not copies and len(new_batches) == len(batch_keys):
            return self._hold_next(encoded, None, now, new_batches)  # every batch is new: the common case
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * count
        for k in keys:
            check_name("idempotency key", k, optional=True)
        known = self._keys.known_keys({k for k, o in zip(keys, offsets, strict=True) if k is not None and not o})
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
            self._keys.check_repeats(encoded, keys, repeats)
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
        self._writes.hold(offsets, encoded, keys, now)
        self._keys.hold(offsets, keys, batches or ())
        if not self.db.in_transaction:
            self._flush()

    def _flush(self) -> None:
        """Insert what is held (the batch keys go into the filter before the commit)."""
        batches = self._keys.take()
        self._writes.flush(batches)
        if batches:
            self._keys.remember(list(batches))

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
            row = self.db.conn.execute('SELECT max("offset") FROM events WHERE create_time < ?', [utc(time)]).fetchone()
        assert row is not None
        return int(row[0] or 0)

    def latest_offset(self) -> int:
        """The offset of the newest committed event (0 for an empty log)."""
        return self._last_offset
