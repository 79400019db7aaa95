"""Fuzzing the two readers of user input: the ``%%aiflow`` line parser and ``Workflow.from_spec``.

Whatever they are given, they either succeed or raise an
``aiflow_nb.errors.AiflowError`` with a one-line message; never anything
else (a KeyError, a TypeError, an argparse exit).  Hypothesis derandomized:
the same examples at each run, so a failure replays.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiflow_nb import BashTask, NotebookTask, TaskAction, Workflow
from aiflow_nb.errors import AiflowError
from aiflow_nb.notebooks import code_notebook
from aiflow_nb.workflow.cell_syntax import parse_cell
from aiflow_nb.workflow.cells import Draft

FUZZ = settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

COMMANDS = ["task", "setup", "rule", "workflow", "submit", "", "tsk"]
OPTIONS = [
    "--workflow",
    "--namespace",
    "--notebook",
    "--param",
    "--streaming",
    "--retries",
    "--retry-delay",
    "--timeout",
    "--executor",
    "--on-event",
    "--value",
    "--after",
    "--condition",
    "--action",
    "--cron",
    "--tz",
    "--interval",
    "--trigger-on",
    "--catchup",
    "--max-active",
    "--on-max-active",
]
VALUES = [
    "wf",
    "a",
    "b",
    "a,b:FAILED",
    "k@ns",
    "@",
    "n=3",
    "x",
    "-1",
    "0",
    "1e309",
    "nan",
    "'0 * * * *'",
    "'* *'",
    "Europe/Berlin",
    "start",
    "stop",
    "queue",
    "'{\"a\": 1}'",
    "tests.workflow.conds:EveryNth",
    "no.such:Thing",
    "'",
    '"',
    "\\",
    "é",
    "\x00",
]


def one_line(exc: AiflowError) -> None:
    message = str(exc)
    assert message and "\n" not in message.strip() and "Traceback" not in message, message


@st.composite
def magic_lines(draw: st.DrawFn) -> str:
    words = [draw(st.sampled_from(COMMANDS))]
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(["t", "bad name", "", "x" * 300])))
    for _ in range(draw(st.integers(0, 8))):
        words.append(draw(st.sampled_from(OPTIONS)))
        if draw(st.integers(0, 4)):
            words.append(draw(st.sampled_from(VALUES) | st.text(max_size=12)))
    return " ".join(words)


@FUZZ
@given(line=magic_lines() | st.text(max_size=80), body=st.none() | st.sampled_from(["", "x = 1", "print(n)", "  \n"]))
def test_the_magic_parser_raises_only_aiflow_errors(line: str, body: str | None) -> None:
    try:
        cell = parse_cell(line, body, base_dir=".")
        draft = Draft()
        draft.add(cell)  # checked against its workflow as a draft
        draft.build(cell.workflow, cell.namespace)  # and as a submit would
    except AiflowError as exc:
        one_line(exc)


def valid_spec() -> dict[str, Any]:
    with Workflow("fuzzed", namespace="ns", max_active_executions=2) as wf:
        a = BashTask("a", command="true", max_retries=1, retry_delay=0.5, timeout=30, executor="local")
        nb = NotebookTask("nb", notebook=code_notebook("x = 1", parameters="n = 0"), parameters={"n": 3})
        nb.start_after(a)
        nb.action_on_event_received(TaskAction.RESTART, "drift", namespace="ops", value={"level": 2})
        a.schedule(cron="0 * * * *", timezone="Europe/Berlin")
    wf.trigger_on("go")
    return json.loads(json.dumps(wf.to_spec()))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += paths(v, (*prefix, i))
    return found


SPEC = valid_spec()
SPEC_PATHS = [p for p in paths(SPEC) if p and "notebook" not in p[:3]]  # inside the notebook: nbformat's business


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    spec = copy.deepcopy(SPEC)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(SPEC_PATHS))
        parent: Any = spec
        try:
            for step in path[:-1]:
                parent = parent[step]
            what = draw(st.sampled_from(["replace", "delete"]))
            if what == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, (dict, list)):
                parent[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape above this path
    return spec


@FUZZ
@given(spec=mutated_specs() | JSON | st.text(max_size=40))
def test_the_spec_reader_raises_only_aiflow_errors(spec: Any) -> None:
    try:
        wf = Workflow.from_spec(spec)
    except AiflowError as exc:
        one_line(exc)
        return
    # What it accepts, it writes back and reads again the same.
    assert Workflow.from_spec(json.loads(json.dumps(wf.to_spec()))) == wf
