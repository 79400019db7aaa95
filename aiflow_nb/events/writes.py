"""The log's tables, and new events held in a transaction until one insert at its commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import pyarrow as pa

from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.events.rows import EventRow, row_of
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
#: Inserts of fewer rows go through DuckDB's appender; from ARROW_ROWS on through Arrow (see ``_insert``).
ARROW_ROWS = 500
_EVENTS_INSERT = 'events ("offset", key, value, namespace, sender, context, create_time, idempotency_key)'

#: Events held for the insert: their offsets, columns, own idempotency keys (None: none has one), create_time.
Held = tuple[list[int], EncodedEvents, list[str | None] | None, datetime]


class HeldWrites:
    """New events of the open transaction, inserted at its commit (or before a read of the log).

    However many times a transaction appends, its events go in with one
    INSERT (each DuckDB statement has a fixed cost), and the batch keys that
    came with them with one more.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.held: list[Held] = []

    def clear(self) -> None:
        self.held = []

    def hold(self, offsets: list[int], encoded: EncodedEvents, keys: list[str | None] | None, now: datetime) -> None:
        self.held.append((offsets, encoded, keys, now))

    def rows(self, offsets: Iterable[int]) -> dict[int, EventRow]:
        """(key, value, namespace, sender, context) of the events at ``offsets``, held or committed."""
        wanted = set(offsets)
        found: dict[int, EventRow] = {}
        for held, encoded, _, _ in self.held:
            for n, offset in enumerate(held):
                if offset in wanted:
                    found[offset] = row_of(encoded, n)
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

    def flush(self, batches: dict[str, tuple[int, int]]) -> None:
        """Insert what is held, and ``batches`` (batch key: first offset, size).

        The events in one statement unless they are many and of several create_times.
        """
        held, self.held = self.held, []
        if len(batches) >= ARROW_ROWS:
            self.db.conn.execute(
                "INSERT INTO batch_idempotency (idempotency_key, first_offset, size) "
                "SELECT unnest($1), unnest($2), unnest($3)",
                [list(batches), [first for first, _ in batches.values()], [size for _, size in batches.values()]],
            )
        elif batches:
            self.db.conn.append("batch_idempotency", [(k, first, size) for k, (first, size) in batches.items()])
        if not held:
            return
        if len(held) == 1 or (sum(len(h[0]) for h in held) >= ARROW_ROWS and len({h[3] for h in held}) > 1):
            for offsets, encoded, keys, now in held:
                self._insert(offsets, encoded, keys, [now] * len(offsets))
            return
        keyed = any(h[2] is not None for h in held)
        self._insert(
            [o for h in held for o in h[0]],
            EncodedEvents.join([h[1] for h in held]),
            [k for h in held for k in (h[2] or [None] * len(h[0]))] if keyed else None,
            [h[3] for h in held for _ in h[0]],
        )

    def _insert(
        self, offsets: list[int], encoded: EncodedEvents, keys: Sequence[str | None] | None, times: list[datetime]
    ) -> None:
        """Insert new events (``keys``: their idempotency keys, None for none at all; ``times``: create_time).

        ARROW_ROWS rows or more must share one create_time (``flush`` sees to it).  Each
        form is the quickest for its size (DuckDB 2.0, one thread): DuckDB's appender has
        no SQL to parse or plan, but converts row by row; registering an Arrow table has
        a higher fixed cost and the lowest per row.
        """
        conn = self.db.conn
        n = len(offsets)
        if n >= ARROW_ROWS:
            self._insert_arrow(offsets, encoded, keys, times[0])
            return
        # The columns in the table's order (see SCHEMA).
        conn.append("events", zip(offsets, *encoded, times, keys if keys is not None else [None] * n, strict=True))
        if keys is not None:
            keyed = [(k, o) for o, k in zip(offsets, keys, strict=True) if k is not None]
            if keyed:
                conn.append("event_idempotency", keyed)

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
