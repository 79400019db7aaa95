"""Replay: a workflow through the rules over the recorded log, in memory, nothing written or launched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, TaskAction, TaskStatus, Workflow, WorkflowStatus, errors
from aiflow_nb.events import Event
from aiflow_nb.scheduler.dryrun_diff import Runs, differences
from aiflow_nb.scheduler.dryrun_window import parse_bound
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution
from tests.cli_runner import cli
from tests.conftest import InsideRun
from tests.scheduler.tasks import settle, wait_execution, wait_run


def chained() -> Workflow:
    with Workflow("chain") as wf:
        a = BashTask("a", command="true").action_on_event_received(TaskAction.START, "go")
        BashTask("b", command="true").start_after(a)
        BashTask("c", command="exit 1").action_on_task_status(TaskAction.START, {"b": TaskStatus.SUCCESS})
    return wf


def triggered(key: str) -> Workflow:
    with Workflow("trig") as wf:
        BashTask("t", command="true")
    return wf.trigger_on(key)


def everything(engine: Engine) -> tuple[object, ...]:
    """Every stored row and the log's length."""
    store = engine.scheduler.store
    with engine.db.lock:
        return (
            store.event_count(),
            store.all_executions(),
            store.all_task_executions(),
            store.all_causes(),
            store.all_condition_states(),
            store.workflows(),
        )


def test_the_submitted_version_replayed_over_its_window_gives_no_difference(engine: Engine, home: Path) -> None:
    engine.submit(chained())
    engine.submit(triggered("new_data"))
    ex_id = engine.start_execution("chain")
    engine.send_event("go")
    wait_run(engine, ex_id, "c", TaskStatus.FAILED)
    for part in range(2):
        engine.send_event("new_data", {"part": part})
    wait_execution(engine, 3, WorkflowStatus.SUCCESS)
    settle(engine)
    before = everything(engine)
    runs_before = sorted(p.name for p in (home / "runs").iterdir())

    result = engine.replay(chained(), outcomes="recorded", diff=True)
    assert result.diff == {"only_replay": [], "only_real": [], "cause_differs": []}
    assert [(i["task"], i["status"]) for i in result.items if i["kind"] == "run"] == [
        ("a", "SUCCESS"), ("b", "SUCCESS"), ("c", "FAILED"),
    ]  # fmt: skip
    assert result.summary() == {"executions": 1, "runs": {"a": 1, "b": 1, "c": 1}, "unmatched_events": 0}

    trig = engine.replay(triggered("new_data"), diff=True)
    assert trig.diff == {"only_replay": [], "only_real": [], "cause_differs": []}
    assert trig.summary()["executions"] == 2
    assert [i["kind"] for i in trig.items] == ["execution", "run", "execution", "run"]

    assert everything(engine) == before  # nothing written
    assert sorted(p.name for p in (home / "runs").iterdir()) == runs_before  # nothing launched


def test_a_changed_rule_reports_the_runs_it_would_add_and_drop(engine: Engine) -> None:
    engine.submit(triggered("new_data"))
    engine.send_event("new_data")
    engine.send_event("other_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    settle(engine)

    moved = engine.replay(triggered("other_data"), diff=True)
    assert moved.diff is not None
    assert [(r["task"], r["seq"]) for r in moved.diff["only_replay"]] == [("t", 1)]
    assert [(r["task"], r["seq"]) for r in moved.diff["only_real"]] == [("t", 1)]
    assert "other_data" in moved.diff["only_replay"][0]["execution"] or moved.items[0]["key"] == "other_data"

    failing = engine.replay(chained(), outcomes="failed")
    assert failing.items == [] and failing.diff is None


def test_a_window_limits_what_is_replayed(engine: Engine) -> None:
    engine.submit(triggered("new_data"))
    first = engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    settle(engine)
    second = engine.send_event("new_data")
    wait_execution(engine, 2, WorkflowStatus.SUCCESS)
    settle(engine)
    only_second = engine.replay(triggered("new_data"), since=second - 1, diff=True)
    assert [i["offset"] for i in only_second.items if i["kind"] == "execution"] == [second]
    assert only_second.diff == {"only_replay": [], "only_real": [], "cause_differs": []}
    only_first = engine.replay(triggered("new_data"), until=first)
    assert [i["offset"] for i in only_first.items if i["kind"] == "execution"] == [first]


def test_bad_input_names_the_problem_and_writes_nothing(engine: Engine) -> None:
    engine.submit(triggered("new_data"))
    engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    settle(engine)
    before = everything(engine)
    with pytest.raises(errors.SpecError, match=r"--since \(5\) is after --until \(2\)"):
        engine.replay(triggered("new_data"), since=5, until=2)
    with pytest.raises(errors.SpecError, match="beyond the log's end"):
        engine.replay(triggered("new_data"), since=10_000)
    with pytest.raises(errors.SpecError, match="unknown outcome mode 'maybe'"):
        engine.replay(triggered("new_data"), outcomes="maybe")
    with Workflow("never_submitted") as other:
        BashTask("t", command="true")
    with pytest.raises(errors.SpecError, match="no workflow default/never_submitted was submitted"):
        engine.replay(other, diff=True)
    assert everything(engine) == before


def test_the_submitted_version_is_replayed_by_its_name(engine: Engine) -> None:
    engine.submit(triggered("new_data"))
    engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    engine.submit(triggered("other_data"))  # version 2: it would have started nothing
    settle(engine)
    before = everything(engine)

    assert engine.replay("trig", version=1, diff=True).diff == {"only_replay": [], "only_real": [], "cause_differs": []}
    latest = engine.replay("trig", diff=True)
    assert latest.summary()["executions"] == 0
    assert [(r["task"], r["seq"]) for r in (latest.diff or {})["only_real"]] == [("t", 1)]
    with pytest.raises(errors.NotFoundError, match="workflow default/nope does not exist"):
        engine.replay("nope")
    with pytest.raises(errors.NotFoundError, match="workflow default/trig has no version 9"):
        engine.replay("trig", version=9)
    with pytest.raises(errors.NotFoundError, match="workflow elsewhere/trig does not exist"):
        engine.replay("trig", namespace="elsewhere")
    assert everything(engine) == before


FLOW = """\
from aiflow_nb import BashTask, Workflow

with Workflow("trig") as wf:
    BashTask("t", command="true")
wf.trigger_on("{key}")
"""


def test_the_cli_and_the_rest_api_replay_and_refuse_bad_input(home: Path, tmp_path: Path) -> None:
    import json
    import subprocess

    import httpx

    from tests.conftest import RunningService
    from tests.server import wait

    service = RunningService(home).start()
    try:
        client = service.client()
        client.submit(triggered("new_data"))
        client.send_event("new_data")
        wait(lambda: [e for e in client.executions(workflow="trig") if e.status is WorkflowStatus.SUCCESS], 60)
        flow = tmp_path / "flow.py"
        flow.write_text(FLOW.format(key="other_data"))

        def replay(*argv: str) -> subprocess.CompletedProcess[str]:
            return cli(home, "workflow", "replay", str(flow), *argv, code=None)

        shown = replay("--diff", "-o", "json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["summary"] == {"executions": 0, "runs": {}, "unmatched_events": 0}
        assert [(r["task"], r["seq"]) for r in data["diff"]["only_real"]] == [("t", 1)]
        text = replay("--diff")
        assert "only in reality: t #1" in text.stdout

        for argv, words in (
            (("--since", "5", "--until", "2"), "is after --until"),
            (("--outcomes", "maybe"), "unknown outcome mode"),
        ):
            bad = replay(*argv)
            assert bad.returncode != 0
            assert len(bad.stderr.strip().splitlines()) == 1 and words in bad.stderr

        url = f"{service.info.url}/api/v1/replay"
        headers = {"Authorization": f"token {service.info.token}"}
        answer = httpx.post(url, json={"spec": {"name": 1}}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_spec"
        answer = httpx.post(url, json={"spec": triggered("x").to_spec(), "since": 5, "until": 2}, headers=headers)
        assert answer.status_code == 400 and "is after --until" in answer.json()["error"]["message"]

        # The submitted version, by its name: no FILE.
        def named(*argv: str) -> subprocess.CompletedProcess[str]:
            return cli(home, "workflow", "replay", *argv, code=None)

        itself = named("--name", "trig", "--diff")
        assert itself.returncode == 0, itself.stderr
        assert "no difference with what the submitted version did" in itself.stdout
        assert json.loads(named("--name", "trig", "--version", "1", "-o", "json").stdout)["summary"]["executions"] == 1
        for argv, words in (
            (("--name", "nope"), "workflow default/nope does not exist"),
            (("--name", "trig", "--version", "7"), "has no version 7"),
        ):
            bad = named(*argv)
            assert bad.returncode != 0
            assert len(bad.stderr.strip().splitlines()) == 1 and words in bad.stderr, bad.stderr
        usage = named()  # argparse's usage line, then the problem
        assert usage.returncode == 2 and usage.stderr.strip().splitlines()[-1].endswith(
            "needs a FILE, or --name of a submitted workflow"
        )
        answer = httpx.post(url, json={"name": "trig", "diff": True}, headers=headers)
        assert answer.status_code == 200 and answer.json()["summary"]["executions"] == 1
        assert answer.json()["diff"] == {"only_replay": [], "only_real": [], "cause_differs": []}
        for body, status, words in (
            ({"name": "nope"}, 404, "workflow default/nope does not exist"),
            ({"name": "trig", "version": 3}, 404, "has no version 3"),
            ({"name": "trig", "version": 0}, 400, "version must be a number from 1"),
            ({"name": "trig", "spec": triggered("x").to_spec()}, 400, "or {"),
            ({"name": ""}, 400, "name must be a workflow's name"),
        ):
            answer = httpx.post(url, json=body, headers=headers)
            assert answer.status_code == status and words in answer.json()["error"]["message"], answer.text
        assert len(client.executions()) == 1
    finally:
        service.stop()


# -- every other rule kind: the submitted version replayed over its own window changes nothing --------------

NO_DIFFERENCE = {"only_replay": [], "only_real": [], "cause_differs": []}


def replays_itself(engine: Engine, wf: Workflow, since: int | None = None) -> list[tuple[str, int, str]]:
    """Replay the submitted ``wf`` with recorded outcomes: no difference; its runs (task, seq, status)."""
    settle(engine)
    result = engine.replay(wf, since=since, outcomes="recorded", diff=True)
    assert result.diff == NO_DIFFERENCE, result.lines()
    return [(i["task"], i["seq"], i["status"]) for i in result.items if i["kind"] == "run"]


def on_condition(name: str, condition: object) -> Workflow:
    """``t`` starts on ``condition``; ``idle`` waits for an event nobody sends, so the execution stays RUNNING."""
    with Workflow(name) as wf:
        BashTask("t", command="true").action_on_condition(TaskAction.START, condition)  # type: ignore[arg-type]
        BashTask("idle", command="true").action_on_event_received(TaskAction.START, "never")
    return wf


def test_all_of_any_of_and_a_stateful_condition_replay_as_they_ran(engine: Engine) -> None:
    from aiflow_nb import AllOf, AnyOf, EventCondition
    from tests.scheduler.conds import EverySecond

    for name, condition, sends, fired in (
        ("all", AllOf([EventCondition("a"), EventCondition("b")]), ["a", "a", "b", "b", "a"], 2),
        ("any", AnyOf([EventCondition("a"), EventCondition("b", sender="s")]), ["a", "b", "c", "a"], 2),
        ("second", EverySecond("a"), ["a", "a", "a", "a", "a"], 2),
    ):
        wf = on_condition(name, condition)
        engine.submit(wf)
        ex_id = engine.start_execution(name)
        for key in sends:
            engine.send_event(key, sender="other")
            settle(engine)  # each run ends before the next event: a START on a live run does nothing
            engine.wait_for(lambda ex=ex_id: not [t for t in engine.task_executions(ex) if t.status.alive], 30, "t")
        wait_run(engine, ex_id, "t", TaskStatus.SUCCESS, seq=fired)
        assert replays_itself(engine, wf) == [("t", n, "SUCCESS") for n in range(1, fired + 1)]
        engine.stop_execution(ex_id)
        settle(engine)


def test_restart_and_stop_rules_replay_as_they_ran(engine: Engine) -> None:
    with Workflow("streams") as wf:
        BashTask("s", command="sleep 60", streaming=True).action_on_event_received(TaskAction.RESTART, "drift")
        BashTask("k", command="sleep 60").action_on_event_received(TaskAction.STOP, "halt")
    engine.submit(wf)
    ex_id = engine.start_execution("streams")
    wait_run(engine, ex_id, "s", TaskStatus.RUNNING)
    wait_run(engine, ex_id, "k", TaskStatus.RUNNING)
    engine.send_event("drift")
    wait_run(engine, ex_id, "s", TaskStatus.RUNNING, seq=2)
    engine.send_event("halt")
    wait_run(engine, ex_id, "k", TaskStatus.STOPPED)
    engine.stop_execution(ex_id)
    wait_execution(engine, ex_id, WorkflowStatus.STOPPED)
    runs = replays_itself(engine, wf)
    assert sorted(runs) == [("k", 1, "STOPPED"), ("s", 1, "STOPPED"), ("s", 2, "STOPPED")]


def test_retries_replay_as_they_ran(engine: Engine) -> None:
    with Workflow("retried") as wf:
        BashTask("t", command="exit 3", max_retries=2)
    engine.submit(wf)
    ex_id = engine.start_execution("retried")
    wait_execution(engine, ex_id, WorkflowStatus.FAILED)
    assert replays_itself(engine, wf) == [("t", 1, "FAILED")]
    result = engine.replay(wf, outcomes="recorded")
    assert [i["attempt"] for i in result.items if i["kind"] == "run"] == [3]


def test_schedule_ticks_replay_as_they_ran_also_from_the_middle_of_the_log(home: Path) -> None:
    from datetime import datetime, timedelta

    from tests.scheduler.fake_clock import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    with Workflow("sched") as wf:
        BashTask("t", command="true")
    wf.schedule(interval=timedelta(minutes=1))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(wf)
        middle = None
        for minute in range(1, 5):
            clock.advance(timedelta(minutes=1))
            settle(engine)
            wait_execution(engine, minute, WorkflowStatus.SUCCESS)
            if minute == 2:
                middle = engine.log.latest_offset()
        assert replays_itself(engine, wf) == [("t", 1, "SUCCESS")] * 4
        assert replays_itself(engine, wf, since=middle) == [("t", 1, "SUCCESS")] * 2


def test_events_sent_from_inside_a_task_replay_into_the_execution_made_by_the_same_cause(
    inside_run: InsideRun,
) -> None:
    client, wf = inside_run.client, inside_run.workflow
    result = client.replay(wf, outcomes="recorded", diff=True)
    assert result.diff == NO_DIFFERENCE, result.lines()
    assert sorted((i["task"], i["status"]) for i in result.items if i["kind"] == "run") == [
        ("stream", "SUCCESS"), ("train", "SUCCESS"),
    ]  # fmt: skip
    assert result.summary()["unmatched_events"] == 0
    # A version whose stream never runs still gets the event, re-scoped to its execution made by that command.
    with Workflow("inside") as other:
        BashTask("stream", command="true").action_on_event_received(TaskAction.START, "never")
        BashTask("train", command="true").action_on_event_received(TaskAction.START, "hour_complete")
    changed = client.replay(other, outcomes="recorded", diff=True)
    assert changed.summary()["runs"] == {"train": 1}
    assert changed.diff is not None and [r["task"] for r in changed.diff["only_real"]] == ["stream"]


# -- the pure parts: the window as typed, and the comparison with what ran ------------------------------------


def test_a_window_bound_is_an_offset_a_time_ago_or_an_iso_time() -> None:
    now = datetime(2026, 5, 2, 12, tzinfo=UTC)
    assert parse_bound(None, "--since", now) is None
    assert parse_bound(" 1234 ", "--since", now) == 1234
    assert parse_bound("30m", "--since", now) == now - timedelta(minutes=30)
    assert parse_bound("24h", "--since", now) == now - timedelta(hours=24)
    assert parse_bound("7d", "--since", now) == now - timedelta(days=7)
    assert parse_bound("2026-05-01T10:00", "--until", now) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    zoned = parse_bound("2026-05-01T10:00+02:00", "--until", now)
    assert zoned == datetime(2026, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(errors.SpecError, match="--until must be an offset, a time ago like 24h"):
        parse_bound("yesterday", "--until", now)


def test_runs_pair_by_the_cause_of_their_execution_and_their_task_and_seq_not_by_ids() -> None:
    events = {5: Event("go", offset=5), 6: Event("go", offset=6), 7: Event("other", offset=7)}
    start = datetime(2026, 5, 2, tzinfo=UTC)

    def made(ex_id: int, offset: int, runs: list[tuple[str, int, int]]) -> Runs:
        """An execution triggered by the event at ``offset``; its runs (task, seq, event that started it)."""
        ex = WorkflowExecution(ex_id, "default", "w", 1, WorkflowStatus.SUCCESS, start)
        why = json.dumps({"event": offset, "rule": "default/w:trigger#1"})
        rows = [
            (TaskExecution(ex_id * 10 + n, ex_id, task, seq, TaskStatus.SUCCESS), json.dumps({"event": e, "rule": "r"}))
            for n, (task, seq, e) in enumerate(runs)
        ]
        return Runs([(ex, why)], rows)

    same = differences(made(1, 5, [("a", 1, 5)]), made(9, 5, [("a", 1, 5)]), events)
    assert same == {"only_replay": [], "only_real": [], "cause_differs": []}  # other ids, same causes
    moved = differences(made(1, 5, [("a", 1, 5), ("b", 1, 6)]), made(9, 5, [("a", 1, 6)]), events)
    assert moved["only_replay"] == [{"execution": "default/w:trigger#1 on event 5 go", "task": "b", "seq": 1}]
    assert moved["only_real"] == []
    assert moved["cause_differs"] == [
        {
            "execution": "default/w:trigger#1 on event 5 go",
            "task": "a",
            "seq": 1,
            "replay": "r on event 5 go",
            "real": "r on event 6 go",
        }
    ]
    other = differences(made(1, 7, [("a", 1, 7)]), made(9, 5, [("a", 1, 5)]), events)
    assert [r["execution"] for r in other["only_replay"]] == ["default/w:trigger#1 on event 7 other"]
    assert [r["execution"] for r in other["only_real"]] == ["default/w:trigger#1 on event 5 go"]
