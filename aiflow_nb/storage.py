"""The one DuckDB database of an aiflow-nb home: opening it and transactions.

DuckDB allows a single writer process per file, so exactly one object (the
engine) opens it; every other process goes through the service.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import duckdb

from aiflow_nb.errors import StorageError, StorageFullError, no_space

log = logging.getLogger("aiflow_nb.storage")

#: The version of the tables' layout this code reads and writes: ``meta`` row ``schema_version``.
#: Version 1 writes no row (no row means 1, the layout from before the table existed); a later
#: layout writes its number, and this code then refuses the database instead of misreading it.
SCHEMA_VERSION = 1
META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL)"


def stored_schema_version(conn: Connection) -> int | None:
    """The schema version written in the database, or None if it has no ``meta`` table or no version yet."""
    tables = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = 'meta'"
    ).fetchone()
    if not tables or not tables[0]:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def check_schema_version(conn: Connection, path: str) -> None:
    """Refuse a database written by a newer aiflow-nb (its tables may mean something else)."""
    found = stored_schema_version(conn)
    if found is not None and found > SCHEMA_VERSION:
        raise StorageError(
            f"the database {path} has schema version {found}, newer than this aiflow-nb reads ({SCHEMA_VERSION}): "
            "upgrade aiflow-nb"
        )


def storage_failure(path: str, exc: BaseException) -> StorageError:
    """The error of a commit that could not be written: :class:`StorageFullError` when there was no room."""
    why = no_space(exc)
    if why is not None:
        return StorageFullError(
            f"disk full: could not write the database {path} ({why}); nothing of this change was stored"
        )
    return StorageError(
        f"could not write the database {path} ({str(exc).splitlines()[0]}); "
        "nothing of this change was stored: is the disk full?"
    )


class WaitedLock:
    """A re-entrant lock that tells how many threads wait for it.

    The engine loop takes the lock step after step; Python's locks do not
    queue waiters in order, so the loop checks ``waiting`` and lets API
    threads in between its steps.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count = threading.Lock()
        self.waiting = 0

    def acquire(self) -> None:
        with self._count:
            self.waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._count:
                self.waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def let_waiters_in(self, patience: float = 0.05) -> None:
        """After releasing it: wait (up to ``patience`` s) while other threads wait for the lock."""
        deadline = time.monotonic() + patience
        while self.waiting and time.monotonic() < deadline:
            time.sleep(0.0002)

    def __enter__(self) -> WaitedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Connection:
    """The database's DuckDB connection; in a transaction, its BEGIN goes with the first statement.

    A scheduler step that finds nothing to do (most steps of an idle
    service, one every poll) then sends no BEGIN and COMMIT at all.
    """

    def __init__(self, raw: duckdb.DuckDBPyConnection) -> None:
        self.raw = raw
        #: Inside a transaction that has not sent BEGIN yet.
        self.begin_pending = False
        self._appenders: dict[str, duckdb.Appender] = {}

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection:
        self._begin()
        return self.raw.execute(query, parameters)

    def register(self, name: str, data: object) -> None:
        # Also the start of the transaction's work: BEGIN first, which also ends a result left unread
        # (DuckDB refuses to register while one is open).
        self._begin()
        self.raw.register(name, data)

    def append(self, table: str, rows: Iterable[Sequence[object]]) -> None:
        """Insert ``rows`` (every column of ``table``, in order) through DuckDB's appender.

        One statement with no SQL to parse or plan: for a few rows it costs
        less than an INSERT binding them.  A failure leaves nothing buffered.
        """
        self._begin()
        self.raw.complete()  # a result left unread would refuse it
        appender = self._appenders.get(table)
        if appender is None:
            appender = self._appenders[table] = self.raw.appender(table)
        try:
            appender.append_rows(rows)
            appender.flush()
        except BaseException:
            appender.clear()
            raise

    def _begin(self) -> None:
        if self.begin_pending:
            self.raw.execute("BEGIN TRANSACTION")
            self.begin_pending = False

    def unregister(self, name: str) -> None:
        self.raw.unregister(name)

    def close(self) -> None:
        self._appenders.clear()
        self.raw.close()


class Database:
    """A DuckDB connection plus the lock that serialises its users.

    >>> db = Database(":memory:")
    >>> with db.transaction() as conn:
    ...     _ = conn.execute("select 1")
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = Connection(duckdb.connect(self.path, read_only=read_only))
        # Nearly every statement here touches a few rows, and handing them to a second thread costs
        # more than it gains (small writes commit sooner on one thread); the API's reads over a large
        # log are no slower.  verify() uses every core for its full read.
        self.conn.execute("SET threads = 1")
        # Re-entrant: a transaction may call helpers that take it again.
        self.lock = WaitedLock()
        self._depth = 0
        # Called after a rollback so in-memory caches never keep what the
        # database forgot (offset counters, scheduler state).
        self._rollback_hooks: list[Callable[[], None]] = []
        self._commit_hooks: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []

    def verify(self) -> None:
        """Read every block of every table, so damage shows now and not at some later read.

        DuckDB checks a block's checksum only when it reads the block, and a
        file with a broken data block opens fine.  Its cost grows with the log
        (``benchmarks/bench_startup.py``).
        """
        with self.lock:
            tables = self.conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary"
            ).fetchall()
            self.conn.execute("RESET threads")
            try:
                for (table,) in tables:
                    quoted = table.replace('"', '""')
                    self.conn.execute(f'SELECT count(*), sum(hash(COLUMNS(*))) FROM "{quoted}"').fetchall()
            finally:
                self.conn.execute("SET threads = 1")

    def on_close(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` before the connection closes (to end work on cursors of it)."""
        self._close_hooks.append(hook)

    def on_rollback(self, hook: Callable[[], None]) -> None:
        self._rollback_hooks.append(hook)

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` inside each transaction just before it commits (writes held back until then)."""
        self._commit_hooks.append(hook)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run the block in one transaction; nested blocks join the outer one."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.begin_pending = True
            self._depth = 1
            try:
                yield self.conn
                for hook in self._commit_hooks:
                    hook()
                if not self.conn.begin_pending:  # else nothing was read or written: nothing to commit
                    try:
                        self.conn.raw.execute("COMMIT")
                    except duckdb.Error as exc:  # the disk is full (or gone): rolled back, say so plainly
                        raise storage_failure(self.path, exc) from None
            except BaseException:
                if self.conn.begin_pending:
                    self.conn.begin_pending = False  # the hooks' reads run outside any transaction
                else:
                    with contextlib.suppress(duckdb.Error):
                        self.conn.raw.execute("ROLLBACK")
                for hook in self._rollback_hooks:
                    hook()
                raise
            finally:
                self.conn.begin_pending = False
                self._depth = 0

    def close(self) -> None:
        with self.lock:
            for hook in self._close_hooks:
                hook()
            self.conn.close()
