"""Replay: a workflow through the rules over the recorded log, in memory, nothing written or launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, TaskAction, TaskStatus, Workflow, WorkflowStatus, errors
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


FLOW = """\
from aiflow_nb import BashTask, Workflow

with Workflow("trig") as wf:
    BashTask("t", command="true")
wf.trigger_on("{key}")
"""


def test_the_cli_and_the_rest_api_replay_and_refuse_bad_input(home: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

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

        def cli(*argv: str) -> subprocess.CompletedProcess[str]:
            cmd = [sys.executable, "-m", "aiflow_nb.cli", "workflow", "replay", str(flow), *argv, "--home", str(home)]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

        shown = cli("--diff", "-o", "json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["summary"] == {"executions": 0, "runs": {}, "unmatched_events": 0}
        assert [(r["task"], r["seq"]) for r in data["diff"]["only_real"]] == [("t", 1)]
        text = cli("--diff")
        assert "only in reality: t #1" in text.stdout

        for argv, words in (
            (("--since", "5", "--until", "2"), "is after --until"),
            (("--outcomes", "maybe"), "unknown outcome mode"),
        ):
            bad = cli(*argv)
            assert bad.returncode != 0
            assert len(bad.stderr.strip().splitlines()) == 1 and words in bad.stderr

        url = f"{service.info.url}/api/v1/replay"
        headers = {"Authorization": f"token {service.info.token}"}
        answer = httpx.post(url, json={"spec": {"name": 1}}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_spec"
        answer = httpx.post(url, json={"spec": triggered("x").to_spec(), "since": 5, "until": 2}, headers=headers)
        assert answer.status_code == 400 and "is after --until" in answer.json()["error"]["message"]
        assert len(client.executions()) == 1
    finally:
        service.stop()
