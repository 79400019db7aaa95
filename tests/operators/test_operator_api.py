"""The operator API on the model's side: making tasks of an operator, their specs, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiflow_nb_example_ops.ops import TickerTask

from aiflow_nb import BashTask, Task, Workflow
from aiflow_nb.errors import OperatorUnavailableError, SpecError, UnknownOperatorError
from aiflow_nb.operators import Field, Handle, JobStatus, Operator, OperatorContext, known_operators
from aiflow_nb.workflow.cell_syntax import parse_cell
from aiflow_nb.workflow.cells import Draft
from aiflow_nb.workflow.graph import workflow_graph
from aiflow_nb.workflow.tasks import OperatorTask
from tests.conftest import RunningService
from tests.test_cli import cli


def test_an_entry_point_operator_is_known_and_its_task_round_trips_through_the_spec(tmp_path: Path) -> None:
    assert {"ticker", "notebook", "python", "bash", "spark"} <= set(known_operators())
    with Workflow("w") as wf:
        t = Task("t", operator="ticker", params={"out": str(tmp_path / "o"), "ticks": 3}, max_retries=1)
    assert isinstance(t, OperatorTask) and t.operator == "ticker"
    spec = wf.to_spec()
    [task_spec] = spec["tasks"]
    assert task_spec["kind"] == "ticker"
    # Defaults are filled in by the operator, so the stored spec says exactly what runs.
    assert task_spec["params"] == {"out": str(tmp_path / "o"), "ticks": 3, "interval": 0.1, "fail_at": 0}
    again = Workflow.from_spec(spec)
    assert again.to_spec() == spec and again.tasks["t"] == t


def test_the_subclass_form_makes_the_same_task_as_task_operator(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    assert TickerTask("t", out=out, ticks=2) == Task("t", operator="ticker", params={"out": out, "ticks": 2})


def test_a_builtin_kind_through_task_operator_is_the_builtin_task() -> None:
    t = Task("b", operator="bash", params={"command": "echo hi"})
    assert type(t) is BashTask and t == BashTask("b", "echo hi")


def test_a_kinds_own_class_refuses_another_operator_and_loose_params() -> None:
    with pytest.raises(SpecError, match="task 'b': BashTask is operator 'bash', not 'ticker'"):
        BashTask("b", "echo hi", operator="ticker")
    with pytest.raises(SpecError, match=r"task 'b': params=\{\.\.\.\} goes with Task\(name, operator=NAME"):
        BashTask("b", "echo hi", params={"cwd": "/tmp"})


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"out": "x", "color": "red"}, SpecError, "task 't': operator 'ticker' does not take 'color'"),
        ({"ticks": 3}, SpecError, "task 't': operator 'ticker' needs 'out'"),
        ({"out": "x", "ticks": "3"}, SpecError, "'ticks' of operator 'ticker' must be int, got '3'"),
        ({"out": "x", "ticks": True}, SpecError, "'ticks' of operator 'ticker' must be int"),
        ({"out": "x", "interval": 0}, SpecError, "interval > 0"),
    ],
)
def test_fields_the_operator_refuses_are_named(params: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Task("t", operator="ticker", params=params)


def test_an_unknown_operator_is_refused_naming_the_task_and_the_known_ones() -> None:
    with pytest.raises(UnknownOperatorError, match=r"task 't': unknown operator 'flink'; known: .*ticker"):
        Task("t", operator="flink", params={})
    spec = {"name": "w", "tasks": [{"name": "t", "kind": "flink", "params": {}}]}
    with pytest.raises(UnknownOperatorError, match="unknown operator 'flink'"):
        Workflow.from_spec(spec)


class NeedsExtra(Operator):
    name = "needs-extra"
    extra = "nothere"
    requires = ("aiflow_nb_no_such_module",)
    fields: ClassVar[dict[str, Field]] = {}

    def start(self, context: OperatorContext) -> Handle:
        raise AssertionError("never started")

    def poll(self, handle: Handle) -> JobStatus:
        raise AssertionError("never polled")

    def stop(self, handle: Handle) -> None:
        raise AssertionError("never stopped")


def test_a_missing_extra_is_one_line_naming_the_extra_to_install() -> None:
    with pytest.raises(OperatorUnavailableError) as info:
        NeedsExtra.validate("t", {})
    assert str(info.value) == "operator 'needs-extra' needs aiflow_nb_no_such_module: pip install 'aiflow-nb[nothere]'"


def test_the_graph_shows_the_operator_of_a_task(tmp_path: Path) -> None:
    with Workflow("w") as wf:
        TickerTask("t", out=str(tmp_path / "o"))
        BashTask("b", "true")
    source = workflow_graph(wf).source
    assert "t\n[ticker]" in source  # the label's second line
    assert "[bash]" not in source


@pytest.mark.parametrize("body", [None, "# ticks into o, three times\n"], ids=["line-magic", "cell-of-comments"])
def test_a_cell_with_operator_makes_a_task_of_that_operator_from_its_params(tmp_path: Path, body: str | None) -> None:
    draft = Draft()
    out = tmp_path / "o"
    draft.add(
        parse_cell(f"task t --workflow w --operator ticker --param out={out} --param ticks=3 --on-event go", body)
    )
    wf = draft.build("w")
    [spec] = wf.to_spec()["tasks"]
    assert (spec["kind"], spec["params"]["out"], spec["params"]["ticks"]) == ("ticker", str(out), 3)
    assert spec["rules"][0]["condition"]["key"] == "go"


@pytest.mark.parametrize(
    ("line", "body", "message"),
    [
        ("task t --workflow w --operator ticker --param color=red --param out=x", "", "does not take 'color'"),
        ("task t --workflow w --operator flink", "", "unknown operator 'flink'"),
        ("task t --workflow w --operator ticker --param out=x", "print(1)", "--operator takes its fields from --param"),
    ],
)
def test_a_bad_operator_cell_is_one_clear_error(line: str, body: str, message: str) -> None:
    draft = Draft()
    with pytest.raises(SpecError, match=message):
        draft.add(parse_cell(line, body))
        draft.build("w")


@pytest.mark.parametrize(
    ("task", "code", "message"),
    [
        ({"name": "t", "kind": "flink", "params": {}}, "unknown_operator", "unknown operator 'flink'"),
        ({"name": "t", "kind": "ticker", "params": {"out": "x", "color": "red"}}, "invalid_spec", "'color'"),
        ({"name": "t", "kind": "ticker", "params": {}}, "invalid_spec", "needs 'out'"),
    ],
)
def test_the_service_refuses_a_bad_operator_task_at_submit_and_stores_nothing(
    service: RunningService, task: dict[str, Any], code: str, message: str
) -> None:
    client = service.client()
    with pytest.raises(SpecError, match=message) as info:
        client.submit({"name": "w", "tasks": [task]})
    assert info.value.code == code
    assert client.workflows() == []


def test_workflow_show_lists_each_tasks_operator(service: RunningService, tmp_path: Path) -> None:
    with Workflow("w") as wf:
        TickerTask("t", out=str(tmp_path / "o"))
        BashTask("b", "true")
    service.client().submit(wf)
    shown = cli(service.home, "workflow", "show", "w").stdout
    rows = {line.split()[0]: line.split()[1] for line in shown.splitlines() if line.split()[:1] in (["t"], ["b"])}
    assert rows == {"t": "ticker", "b": "bash"}
