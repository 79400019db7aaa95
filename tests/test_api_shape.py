"""One API, two faces: the same scenarios against an in-process Engine and a Client of a real service.

Each test runs twice (``api`` is an ``Engine`` on a temp home, then a
``Client`` of a service on another temp home) and asserts the same records,
values and errors, so code written against :class:`AiflowApi` runs on either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, Event, Watermark, Workflow, errors
from aiflow_nb.client import Client
from aiflow_nb.events import keys
from aiflow_nb.workflow.api import AiflowApi
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.status import TaskStatus, WorkflowStatus
from tests.conftest import RunningService
from tests.server import wait, wait_for_file


@pytest.fixture(params=["engine", "client"])
def api(request: pytest.FixtureRequest, home: Path) -> Iterator[AiflowApi]:
    """An Engine running its loop in a thread, or a Client of a real service; closed after the test."""
    if request.param == "engine":
        engine = Engine(home, stop_grace=2.0).start()
        yield engine
        engine.close()
        return
    service = RunningService(home).start()
    try:
        yield service.client()
    finally:
        service.stop()


def test_both_faces_offer_the_api(api: AiflowApi) -> None:
    assert isinstance(api, AiflowApi)
    assert isinstance(api, (Engine, Client))


def shape(second: str) -> Workflow:
    with Workflow("shape") as wf:
        first = BashTask("first", command="echo one")
        BashTask("second", command=second).start_after(first)
    return wf.schedule(cron="0 0 1 1 *")  # every new year: due, but not during the test


def test_submit_list_show_and_delete(api: AiflowApi) -> None:
    with Workflow("other", namespace="team") as other:
        BashTask("t", command="true")
    assert api.submit(shape("echo two")) == 1
    assert api.submit(shape("echo two")) == 1  # unchanged: the same version
    assert api.submit(other) == 1
    wf = shape("echo changed")
    assert api.submit(wf) == 2

    listed = api.workflows()
    assert all(isinstance(w, WorkflowInfo) for w in listed)
    assert [(w.namespace, w.name, w.version, w.paused, w.latest_execution) for w in listed] == [
        ("default", "shape", 2, False, None),
        ("team", "other", 1, False, None),
    ]
    info = api.workflow_info("shape")
    assert info == listed[0]
    new_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert info.next_runs == {"": new_year} == api.next_runs("shape")
    assert api.workflow("shape") == wf  # the latest version, rebuilt from its spec
    assert api.workflow("shape", version=1).tasks["second"].command == "echo two"
    assert api.workflow("other", "team") == other

    api.pause("shape")
    assert api.workflow_info("shape").paused is True
    api.resume("shape")
    assert api.workflow_info("shape").paused is False
    svg = api.graph_svg("shape")
    assert "<svg" in svg and ">first<" in svg and ">second<" in svg

    api.delete_workflow("shape")
    assert [w.name for w in api.workflows()] == ["other"]
    with pytest.raises(errors.NotFoundError, match="shape"):
        api.workflow_info("shape")


def test_executions_and_task_actions(api: AiflowApi, tmp_path: Path) -> None:
    release = tmp_path / "release"
    with Workflow("runs") as wf:
        BashTask("quick", command="echo quick-output")
        BashTask("slow", command=wait_for_file(release)).action_on_event_received("START", "go")
    api.submit(wf)
    ex = api.start_execution("runs")
    started = api.execution(ex)
    assert isinstance(started, WorkflowExecution)
    assert (started.id, started.workflow, started.namespace, started.version) == (ex, "runs", "default", 1)
    assert started.status is WorkflowStatus.RUNNING
    latest = api.workflow_info("runs").latest_execution
    assert latest is not None and latest.id == ex
    assert [e.id for e in api.executions(workflow="runs", status=WorkflowStatus.RUNNING)] == [ex]
    assert [e.id for e in api.executions(workflow="runs", status="RUNNING", limit=1)] == [ex]

    quick = wait(
        lambda: next((t for t in api.task_executions(ex) if t.status is TaskStatus.SUCCESS), None), 60, "quick"
    )
    assert isinstance(quick, TaskExecution) and quick.task == "quick"
    assert api.task_execution(quick.id) == quick
    assert "quick-output" in api.task_log(quick.id)
    with pytest.raises(errors.NotFoundError, match="no executed notebook"):
        api.task_notebook(quick.id)

    # START, STOP and RESTART of a task return the task's runs.
    runs = api.start_task(ex, "slow")
    assert [(t.task, t.seq) for t in runs] == [("slow", 1)]
    wait(lambda: api.task_executions(ex)[-1].status is TaskStatus.RUNNING, 60, "slow running")
    assert [t.seq for t in api.start_task(ex, "slow")] == [1]  # START on an alive task is ignored
    assert [t.task for t in api.stop_task(ex, "slow")] == ["slow"]
    wait(lambda: api.task_executions(ex)[-1].status is TaskStatus.STOPPED, 60, "slow stopped")
    restarted = api.restart_task(ex, "slow")
    assert [(t.seq, type(t)) for t in restarted] == [(1, TaskExecution), (2, TaskExecution)]
    wait(lambda: api.task_executions(ex)[-1].status is TaskStatus.RUNNING, 60, "slow running again")

    stopped = api.stop_execution(ex)
    assert isinstance(stopped, WorkflowExecution)
    assert (stopped.id, stopped.status) == (ex, WorkflowStatus.STOPPED)
    wait(lambda: api.task_executions(ex)[-1].status is TaskStatus.STOPPED, 60, "the last run stopped")
    assert [e.status for e in api.executions(workflow="runs")] == [WorkflowStatus.STOPPED]


def test_events_and_their_filters(api: AiflowApi) -> None:
    start = api.events()[-1].offset if api.events() else 0
    assert start is not None
    one = api.send_event("shape.a", {"n": 1})
    two = api.send_event("shape.b", [1, 2], namespace="team", sender="tester")
    keyed = api.send_event("shape.a", "keyed", idempotency_key="k-1")
    assert api.send_event("shape.a", "keyed", idempotency_key="k-1") == keyed  # a retry: not appended twice
    with pytest.raises(errors.IdempotencyKeyReusedError, match="k-1"):
        api.send_event("shape.a", "another", idempotency_key="k-1")  # the key of another event
    many = api.send_events([Event("shape.c", i) for i in range(3)])
    assert many == [keyed + 1, keyed + 2, keyed + 3]
    assert api.send_events([]) == []

    mine = [e for e in api.events(since=start) if e.key.startswith("shape.")]
    assert all(isinstance(e, Event) for e in mine)
    assert [(e.offset, e.key, e.value) for e in mine] == [
        (one, "shape.a", {"n": 1}),
        (two, "shape.b", [1, 2]),
        (keyed, "shape.a", "keyed"),
        *((offset, "shape.c", i) for i, offset in enumerate(many)),
    ]
    assert [e.offset for e in api.events(key="shape.a")] == [one, keyed]
    assert [e.offset for e in api.events(namespace="team")] == [two]
    assert [e.offset for e in api.events(sender="tester")] == [two]
    assert [e.offset for e in api.events(since=keyed, limit=2, key="shape.c")] == many[:2]


def test_the_stream_gives_the_past_then_live_events(api: AiflowApi) -> None:
    first = api.send_event("shape.stream", 1)
    stop = threading.Event()
    seen: list[Event] = []
    problems: list[BaseException] = []

    def follow() -> None:
        try:
            for event in api.stream(first - 1, stop):
                if not event.key.startswith(keys.RESERVED_PREFIX):
                    seen.append(event)
        except BaseException as exc:  # reported by the test
            problems.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        wait(lambda: len(seen) == 1 or problems, 60, "the event sent before the stream")
        live = api.send_event("shape.stream", 2)
        wait(lambda: len(seen) == 2 or problems, 60, "the event sent while streaming")
    finally:
        stop.set()
        follower.join(timeout=60)
    assert not follower.is_alive(), "a set stop ends the stream"
    assert not problems, problems
    assert [(e.offset, e.value) for e in seen] == [(first, 1), (live, 2)]


#: A mistake of each kind, and the error both faces raise for it.
MISTAKES: list[tuple[str, Callable[[AiflowApi], object], type[errors.AiflowError]]] = [
    ("info of an unknown workflow", lambda api: api.workflow_info("nope"), errors.NotFoundError),
    ("an unknown workflow", lambda api: api.workflow("nope"), errors.NotFoundError),
    ("start an unknown workflow", lambda api: api.start_execution("nope"), errors.NotFoundError),
    ("delete an unknown workflow", lambda api: api.delete_workflow("nope"), errors.NotFoundError),
    ("graph of an unknown workflow", lambda api: api.graph_svg("nope"), errors.NotFoundError),
    ("an unknown execution", lambda api: api.execution(999), errors.NotFoundError),
    ("stop an unknown execution", lambda api: api.stop_execution(999), errors.NotFoundError),
    ("log of an unknown run", lambda api: api.task_log(999), errors.NotFoundError),
    ("an empty event key", lambda api: api.send_event(""), errors.InvalidEventError),
    ("a workflow without tasks", lambda api: api.submit(Workflow("empty")), errors.SpecError),
]


def test_mistakes_raise_the_same_typed_errors(api: AiflowApi) -> None:
    for what, call, error in MISTAKES:
        with pytest.raises(errors.AiflowError) as caught:
            call(api)
        assert type(caught.value) is error, what
        assert "nope" in str(caught.value) or "999" in str(caught.value) or error is not errors.NotFoundError, what
    assert api.workflows() == [] and api.executions() == [] and api.events() == []  # nothing stored


def test_a_watermark_sends_through_either_face(api: AiflowApi) -> None:
    hour = datetime(2026, 11, 27, 10, tzinfo=UTC)
    mark = Watermark("shape.hour", timedelta(hours=1), client=api)
    assert mark.advance(hour) == []  # the first time only sets where the watermark is
    assert mark.advance(hour + timedelta(hours=2, minutes=5)) == [
        {"start": "2026-11-27T10:00:00+00:00", "end": "2026-11-27T11:00:00+00:00"},
        {"start": "2026-11-27T11:00:00+00:00", "end": "2026-11-27T12:00:00+00:00"},
    ]
    again = Watermark("shape.hour", timedelta(hours=1), client=api)  # a restarted task resumes
    assert again.advance(hour + timedelta(hours=2, minutes=30)) == []
    assert [e.value["start"][11:16] for e in api.events(key="shape.hour")] == ["10:00", "11:00"]
