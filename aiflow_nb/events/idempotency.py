"""Idempotency keys: which are known, their original offsets, and that a repeat sends the same events."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiflow_nb.errors import IdempotencyKeyReusedError, InvalidEventError
from aiflow_nb.events.event import EncodedEvents, check_name
from aiflow_nb.events.keyfilter import KeyFilter
from aiflow_nb.events.rows import ROW_FIELDS, EventRow, row_of
from aiflow_nb.storage import Database

log = logging.getLogger("aiflow_nb.events")

#: The batch-key filter holds at least this many keys, else four times those in the log at start.
FILTER_MIN_CAPACITY = 1_000_000

#: Events ``[start, start + size)`` of a ``stage`` call sent under one idempotency key (see ``EventLog.stage``).
BatchKey = tuple[str, int, int]

#: The stored events at some offsets (``HeldWrites.rows``).
StoredRows = Callable[[Iterable[int]], dict[int, EventRow]]


def _canonical(text: str | None) -> str | None:
    """JSON text in one spelling (keys sorted, no spaces), so the same value sent twice compares equal."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text


def difference(sent: EventRow, original: EventRow | None) -> str | None:
    """The first field in which ``sent`` is not ``original`` (None if it is the same event)."""
    if original is None:
        return "content (the original is not in the log)"
    for n, field in enumerate(ROW_FIELDS):
        a, b = sent[n], original[n]
        if a == b or (field in ("value", "context") and _canonical(a) == _canonical(b)):
            continue
        return field
    return None


def _check_batch(key: str, sent: list[EventRow], original: list[EventRow | None]) -> None:
    """Raise if the events sent again under batch key ``key`` are not those first sent under it."""
    for j, (new, old) in enumerate(zip(sent, original, strict=True)):
        differs = difference(new, old)
        if differs:
            raise IdempotencyKeyReusedError(
                f"idempotency key {key!r} was already used for other events: event {j + 1} differs in its {differs}"
            )


class KnownKeys:
    """The idempotency keys of a log: per event (``event_idempotency``) and per batch (``batch_idempotency``).

    Keys appended in the open transaction are held here until its commit.
    Batch keys are screened by a :class:`KeyFilter` first: the database is
    asked only about keys it may hold.  New keys go into the filter at once,
    it is asked once ``filter_ready`` (loaded), and it is dropped for good
    once full.  Both change one way only, so the loader and the appends need
    no lock between them.  One EventLog writes a database.
    """

    def __init__(self, db: Database, stored_rows: StoredRows) -> None:
        self.db = db
        self.stored_rows = stored_rows
        #: Event keys appended in the open transaction: key -> offset.
        self.pending_keys: dict[str, int] = {}
        #: Batch keys appended in the open transaction: key -> (first offset, size).
        self.pending_batches: dict[str, tuple[int, int]] = {}
        self.filter: KeyFilter | None = None
        self.filter_ready = False
        self._filter_stop = threading.Event()
        self._filter_thread: threading.Thread | None = None

    def clear(self) -> None:
        """Forget what the open transaction held (rolled back)."""
        self.pending_keys = {}
        self.pending_batches = {}

    def hold(self, offsets: list[int], keys: list[str | None] | None, batches: Sequence[BatchKey]) -> None:
        """The keys of events appended in the open transaction (``batches``: key, first offset, size)."""
        if keys is not None:
            self.pending_keys.update((k, o) for k, o in zip(keys, offsets, strict=True) if k is not None)
        for key, first, size in batches:
            self.pending_batches[key] = (first, size)

    def take(self) -> dict[str, tuple[int, int]]:
        """The batch keys held, for their insert (the event keys go in with their events)."""
        batches, self.pending_batches, self.pending_keys = self.pending_batches, {}, {}
        return batches

    # -- the batch-key filter --------------------------------------------

    def start_filter(self) -> None:
        """Load the batch keys of the log into a filter, in the background if there are any."""
        row = self.db.conn.execute("SELECT count(*) FROM batch_idempotency").fetchone()
        count = int(row[0]) if row else 0
        self.filter = KeyFilter(max(FILTER_MIN_CAPACITY, 4 * count))
        if count == 0:
            self.filter_ready = True
            return
        # A cursor is a connection of its own: it reads while this one appends.
        cursor = self.db.conn.raw.cursor()
        self._filter_thread = threading.Thread(
            target=self._load_filter, args=(cursor, self.filter), name="aiflow-nb-keyfilter", daemon=True
        )
        self._filter_thread.start()

    def _load_filter(self, cursor: Any, keys: KeyFilter) -> None:
        # Keys appended meanwhile go in from remember(); it is used once complete.
        try:
            cursor.execute("SELECT idempotency_key FROM batch_idempotency")
            while not self._filter_stop.is_set():
                rows = cursor.fetchmany(20_000)
                if not rows:
                    self.filter_ready = True
                    return
                keys.add_many([k for (k,) in rows])
        except Exception:
            log.exception("could not load the idempotency keys; each is looked up in the database")
        finally:
            cursor.close()

    def stop_filter(self) -> None:
        self._filter_stop.set()
        if self._filter_thread is not None:
            self._filter_thread.join(timeout=30)

    def remember(self, keys: list[str]) -> None:
        """Add appended batch keys to the filter (before the commit: a rollback leaves a harmless extra)."""
        known = self.filter
        if known is None:
            return
        known.add_many(keys)
        if known.full:
            # Its false positives would grow: from now on every key is asked (a restart builds a larger one).
            log.info("%s batch keys since start: looking each up in the database from now on", f"{known.count:,}")
            self.filter = None

    # -- look-ups --------------------------------------------------------

    def known_keys(self, keys: set[str]) -> dict[str, int]:
        """The offset of each event key already appended (or held)."""
        if not keys:
            return {}
        held = {k: self.pending_keys[k] for k in keys if k in self.pending_keys}
        if held:
            return {**self.known_keys(keys - held.keys()), **held}
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

    def known_batches(self, keys: set[str]) -> dict[str, tuple[int, int]]:
        """First offset and size of each batch key already appended (or held)."""
        found = {k: self.pending_batches[k] for k in keys if k in self.pending_batches}
        rest = list(keys - found.keys())
        known = self.filter
        if known is not None and self.filter_ready:
            rest = [k for k in rest if k in known]  # the others are surely new
        if rest:
            rows = self.db.conn.execute(
                "SELECT idempotency_key, first_offset, size FROM batch_idempotency "
                "WHERE idempotency_key IN (SELECT unnest(?))",
                [rest],
            ).fetchall()
            found.update((k, (int(first), int(size))) for k, first, size in rows)
        return found

    def resolve_batches(
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
        known = self.known_batches({key for key, _, _ in batch_keys})
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
                    stored = self.stored_rows(range(first, first + size))
                    sent = [row_of(encoded, start + j) for j in range(size)]
                    _check_batch(key, sent, [stored.get(first + j) for j in range(size)])
                offsets[start : start + size] = range(first, first + size)
            elif key in first_seen:
                if encoded is not None:
                    source = first_seen[key][0]
                    sent = [row_of(encoded, start + j) for j in range(size)]
                    _check_batch(key, sent, [row_of(encoded, source + j) for j in range(size)])
                offsets[start : start + size] = [-1] * size
                copies.append((start, size, first_seen[key][0]))
            else:
                first_seen[key] = (start, size)
                new.append((key, start, size))
        return new, copies

    def check_repeats(
        self, encoded: EncodedEvents, keys: Sequence[str | None], repeats: list[tuple[int, int, int | None]]
    ) -> None:
        """Raise if an event sent again under a known key is not the event first sent under it.

        ``repeats``: (row, offset of the original, its row if in this call).
        """
        stored = self.stored_rows([offset for _, offset, row in repeats if row is None])
        for i, offset, row in repeats:
            original = row_of(encoded, row) if row is not None else stored.get(offset)
            differs = difference(row_of(encoded, i), original)
            if differs:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {keys[i]!r} was already used for another event (offset {offset}): "
                    f"its {differs} differs"
                )
