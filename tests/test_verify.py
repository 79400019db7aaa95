"""``verify``: the stored state against the log's replay, in-process, from the command line and over REST."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from aiflow_nb import AllOf, BashTask, Engine, EventCondition, TaskAction, Workflow
from aiflow_nb.events import keys as event_keys
from aiflow_nb.home import database_path
from tests.conftest import RunningService


def cli_verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiflow_nb.cli", "verify", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def finished_home(home: Path) -> None:
    """A home with one execution: a task that succeeds, one that fails after a retry."""
    with Engine(home) as engine:
        with Workflow("w") as wf:
            BashTask("ok", command="true")
            BashTask("bad", command="exit 3", max_retries=1, retry_delay=0)
        engine.submit(wf)
        ex = engine.start_execution("w")
        engine.wait_for(lambda: engine.execution(ex).status.finished)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_finished_home_is_consistent_from_the_command_line(home: Path) -> None:
    finished_home(home)
    result = cli_verify(home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("consistent: ")
    assert result.stdout.strip().endswith("1 executions, 2 task runs")


def test_a_row_changed_by_hand_is_reported_with_its_stored_and_implied_value(home: Path) -> None:
    finished_home(home)
    conn = duckdb.connect(str(database_path(home)))
    conn.execute("UPDATE task_executions SET status = 'SUCCESS', attempt = 1 WHERE task = 'bad'")
    conn.execute("UPDATE executions SET status = 'SUCCESS'")
    conn.close()
    result = cli_verify(home)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "task execution 2 status: stored SUCCESS, the log implies FAILED" in lines
    assert "task execution 2 attempt: stored 1, the log implies 2" in lines
    assert "execution 1 status: stored SUCCESS, the log implies FAILED" in lines


def test_a_run_missing_from_the_tables_is_reported(home: Path) -> None:
    finished_home(home)
    conn = duckdb.connect(str(database_path(home)))
    conn.execute("DELETE FROM task_executions WHERE task = 'ok'")
    conn.close()
    result = cli_verify(home)
    assert result.returncode == 1
    assert "task execution 1 row: stored nothing, the log implies a row" in result.stdout.splitlines()


@pytest.mark.parametrize("what", ["missing", "no database", "a file"])
def test_a_path_that_is_not_a_home_is_one_line_and_exit_2(tmp_path: Path, what: str) -> None:
    target = tmp_path / "target"
    if what == "no database":
        target.mkdir()
    elif what == "a file":
        target.write_text("x")
    result = cli_verify(target)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "is not an aiflow-nb home" in result.stderr
    if what == "no database":
        assert list(target.iterdir()) == []  # nothing written


def test_a_damaged_database_is_one_line_and_exit_2_and_left_as_it_is(home: Path) -> None:
    home.mkdir()
    path = database_path(home)
    path.write_bytes(b"this is not a DuckDB file" * 1000)
    before = digest(path)
    result = cli_verify(home)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "damaged or not an aiflow-nb database" in result.stderr
    assert digest(path) == before
    assert sorted(p.name for p in home.iterdir()) == [path.name]


def test_a_newer_schema_is_refused_by_verify_and_by_the_engine_and_left_as_it_is(home: Path) -> None:
    finished_home(home)
    conn = duckdb.connect(str(database_path(home)))
    conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    conn.close()
    before = digest(database_path(home))
    result = cli_verify(home)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "schema version 99, newer" in result.stderr
    with pytest.raises(Exception, match="schema version 99, newer"):
        Engine(home)
    assert digest(database_path(home)) == before
    result = cli_verify(home)  # the refused engine did not keep the home locked
    assert result.returncode == 2 and "schema version 99" in result.stderr


def test_with_the_service_running_verify_asks_it_over_rest(service: RunningService) -> None:
    client = service.client()
    with Workflow("w") as wf:
        BashTask("ok", command="true")
    client.submit(wf)
    ex = client.start_execution("w")
    deadline = time.monotonic() + 60
    while not client.execution(ex).status.finished:
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.05)
    report = client.request("GET", "/verify")
    assert report["consistent"] is True and report["executions"] == 1 and report["task_runs"] == 1
    result = cli_verify(service.home)  # the service owns the database: the CLI must not open it
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("consistent: ")
    assert service.alive


def test_the_replay_through_the_rules_reports_a_changed_time_and_condition_state(home: Path) -> None:
    with Engine(home) as engine:
        with Workflow("w") as wf:
            BashTask("ok", command="true").action_on_condition(
                TaskAction.START, AllOf([EventCondition("a"), EventCondition("b")])
            )
        engine.submit(wf)
        ex = engine.start_execution("w")
        engine.send_event("a")
        engine.wait_for(lambda: engine.verify().consistent)
    conn = duckdb.connect(str(database_path(home)))
    conn.execute("UPDATE executions SET start_time = TIMESTAMP '2001-01-01 00:00:00'")
    conn.execute("UPDATE condition_state SET state = '{}'")
    conn.close()
    result = cli_verify(home)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"execution {ex} start_time: stored 2001-01-01T00:00:00+00:00, the log implies ")
        for line in lines
    )
    assert any(
        line.startswith(f"condition state ({ex}, 'ok#1') state: stored {{}}, the log implies ") for line in lines
    )


def test_every_input_is_in_the_log(home: Path) -> None:
    finished_home(home)
    with Engine(home) as engine:
        engine.pause("w")
        engine.resume("w")
        kinds = [e.value["kind"] for e in engine.events(key=event_keys.INPUT)]
    # The submission, the start, each run's dispatch and outcome, the retry the clock made due, pause and resume.
    assert kinds[:2] == ["submit", "start_execution"]
    assert kinds.count("dispatch") == 3 and kinds.count("finished") == 3
    assert "clock" in kinds and kinds[-2:] == ["set_paused", "set_paused"]


def test_each_execution_and_run_records_why_it_was_made(home: Path) -> None:
    with Engine(home) as engine:
        with Workflow("w") as wf:
            BashTask("first", command="true")
            BashTask("second", command="true").action_on_event_received(TaskAction.START, "go")
        wf.trigger_on("start")
        engine.submit(wf)
        offset = engine.send_event("start")
        ex = engine.executions()[-1].id
        go = engine.send_event("go")
        engine.wait_for(lambda: engine.execution(ex).status.finished)
        by_hand = engine.start_execution("w")
        engine.stop_execution(by_hand)
    conn = duckdb.connect(str(database_path(home)), read_only=True)
    executions = dict(conn.execute("SELECT id, cause FROM executions").fetchall())
    runs = dict(conn.execute("SELECT task, cause FROM task_executions WHERE execution_id = ?", [ex]).fetchall())
    conn.close()
    assert json.loads(executions[ex]) == {"event": offset, "rule": "default/w:trigger#1"}
    assert json.loads(executions[by_hand])["input"] == "start_execution"
    assert json.loads(runs["first"]) == {"event": offset, "rule": "default/w:trigger#1"}
    assert json.loads(runs["second"]) == {"event": go, "rule": "second#1"}
