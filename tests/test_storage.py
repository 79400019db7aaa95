"""The database wrapper: transactions begin with their first statement, and end cleanly however they end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb.storage import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state.duckdb")
    database.conn.execute("CREATE TABLE t (x INTEGER)")
    yield database
    database.close()


def rows(db: Database) -> list[int]:
    return [x for (x,) in db.conn.execute("SELECT x FROM t ORDER BY x").fetchall()]


def test_a_block_that_fails_before_any_statement_leaves_the_next_transaction_working(db: Database) -> None:
    seen: list[list[int]] = []
    db.on_rollback(lambda: seen.append(rows(db)))  # hooks read the database, as the event log's does
    with pytest.raises(ValueError), db.transaction():
        raise ValueError("before any statement")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    assert seen == [[]]
    assert rows(db) == [1]


def test_a_block_that_fails_after_writing_leaves_nothing(db: Database) -> None:
    with pytest.raises(ValueError), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        raise ValueError("after a write")
    assert rows(db) == []


def test_what_a_commit_hook_writes_is_committed_with_the_block(db: Database) -> None:
    db.before_commit(lambda: db.conn.execute("INSERT INTO t VALUES (3)"))
    with db.transaction():
        pass  # the hook alone writes: the transaction must still begin and commit
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (4)")
    assert rows(db) == [3, 3, 4]
    db.close()
    reopened = Database(db.path)
    try:
        assert rows(reopened) == [3, 3, 4]
    finally:
        reopened.close()
