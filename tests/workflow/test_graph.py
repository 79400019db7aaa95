"""The graphviz drawing of a workflow, read back from its DOT source."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta

import graphviz

from aiflow_nb import AllOf, BashTask, EventCondition, TaskExecution, TaskStatus, TaskStatusCondition, Workflow
from aiflow_nb.workflow.graph import START_NODE, STATUS_COLORS, workflow_graph, workflow_svg

_ID = r'"(?:[^"\\]|\\.)*"|[^\s\[\]"]+'
_STATEMENT = re.compile(
    rf"^\t(?P<a>{_ID})(?: -> (?P<b>{_ID}))? \[(?P<attrs>(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*)\]", re.MULTILINE
)
_ATTR = re.compile(rf"(\w+)=({_ID})")


def _unquote(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


@dataclass
class Dot:
    """Nodes and edges of a DOT source, with their attributes."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def edges_to(self, target: str) -> list[tuple[str, dict[str, str]]]:
        return [(a, attrs) for a, b, attrs in self.edges if b == target]

    def node_by_label(self, label: str) -> str:
        (found,) = [name for name, attrs in self.nodes.items() if attrs.get("label") == label]
        return found


def parse(graph: graphviz.Digraph) -> Dot:
    dot = Dot()
    for m in _STATEMENT.finditer(graph.source):
        attrs = {k: _unquote(v) for k, v in _ATTR.findall(m["attrs"])}
        a = _unquote(m["a"])
        if m["b"] is None:
            if a not in ("graph", "node", "edge"):
                dot.nodes[a] = attrs
        else:
            dot.edges.append((a, _unquote(m["b"]), attrs))
    return dot


def run(task: str, seq: int, status: TaskStatus) -> TaskExecution:
    return TaskExecution(id=seq * 10 + len(task), execution_id=1, task=task, seq=seq, status=status)


def test_tasks_are_nodes_and_status_rules_solid_labelled_edges() -> None:
    with Workflow("etl") as wf:
        extract = BashTask("extract", command="true")
        load = BashTask("load", command="true").start_after(extract)
        BashTask("alert", command="true").action_on_task_status("START", {extract: TaskStatus.FAILED, load: "FAILED"})
        BashTask("cleanup", command="true").action_on_task_status("STOP", {"load": TaskStatus.SUCCESS})
    dot = parse(wf.graph())
    assert set(dot.nodes) == {"extract", "load", "alert", "cleanup"}
    assert all(n["shape"] == "box" and n["fillcolor"] == "#ffffff" for n in dot.nodes.values())
    assert dot.nodes["load"]["tooltip"] == "bash"
    assert dot.edges_to("load") == [("extract", {"label": "SUCCESS"})]
    assert dot.edges_to("alert") == [("extract", {"label": "FAILED"}), ("load", {"label": "FAILED"})]
    assert dot.edges_to("cleanup") == [("load", {"label": "stop SUCCESS"})]
    assert dot.edges_to("extract") == []


def test_event_rules_are_dashed_edges_from_one_node_per_event() -> None:
    with Workflow("ml", "team") as wf:
        stream = BashTask("stream", command="true", streaming=True)
        stream.action_on_event_received("RESTART", "model_drift")
        BashTask("train", command="true").action_on_event_received("START", "hour_complete")
        BashTask("report", command="true").action_on_event_received("START", "hour_complete")
        BashTask("audit", command="true").action_on_event_received("START", "deploy", namespace="ops")
        both = AllOf([EventCondition('label\'s "ready"'), TaskStatusCondition({"train": TaskStatus.SUCCESS})])
        BashTask("publish", command="true").action_on_condition("START", both)
    dot = parse(wf.graph())
    hour = dot.node_by_label("hour_complete")
    assert dot.nodes[hour] == {"label": "hour_complete", "shape": "ellipse", "style": "dashed"}
    # One node per (namespace, key), shared by every rule waiting on it.
    assert dot.edges_to("train") == [(hour, {"label": "", "style": "dashed"})]
    assert dot.edges_to("report") == [(hour, {"label": "", "style": "dashed"})]
    assert dot.edges_to("stream") == [(dot.node_by_label("model_drift"), {"label": "restart", "style": "dashed"})]
    # Another namespace is named; the workflow's own is not.
    assert dot.edges_to("audit") == [(dot.node_by_label("deploy@ops"), {"label": "", "style": "dashed"})]
    # A composite condition draws each of its parts; a key with quotes survives.
    assert dot.edges_to("publish") == [
        (dot.node_by_label('label\'s "ready"'), {"label": "", "style": "dashed"}),
        ("train", {"label": "SUCCESS"}),
    ]
    assert "label&#39;s &quot;ready&quot;" in workflow_svg(wf)


def test_streaming_tasks_are_marked() -> None:
    with Workflow("s") as wf:
        BashTask("stream", command="true", streaming=True)
        BashTask("batch", command="true")
    dot = parse(wf.graph())
    assert dot.nodes["stream"]["peripheries"] == "2"
    assert dot.nodes["stream"]["label"] == "stream\n(streaming)"
    assert "peripheries" not in dot.nodes["batch"]
    assert dot.nodes["batch"]["label"] == "batch"


def test_tasks_are_colored_by_their_latest_run() -> None:
    with Workflow("c") as wf:
        a = BashTask("a", command="true")
        b = BashTask("b", command="true").start_after(a)
        BashTask("c", command="true").start_after(b)
        BashTask("never", command="true").action_on_event_received("START", "x")
    runs = [
        run("b", 2, TaskStatus.RUNNING),  # the latest seq wins, whatever the order
        run("a", 1, TaskStatus.SUCCESS),
        run("b", 1, TaskStatus.FAILED),
        run("c", 1, TaskStatus.QUEUED),
    ]
    dot = parse(wf.graph(runs))
    assert dot.nodes["a"]["fillcolor"] == STATUS_COLORS["SUCCESS"]
    assert dot.nodes["a"]["label"] == "a\nSUCCESS"
    assert dot.nodes["b"]["fillcolor"] == STATUS_COLORS["RUNNING"]
    assert dot.nodes["b"]["label"] == "b\nRUNNING"
    assert dot.nodes["c"]["fillcolor"] == STATUS_COLORS["QUEUED"]
    assert dot.nodes["never"]["fillcolor"] == "#ffffff"
    assert set(STATUS_COLORS) == {s.value for s in TaskStatus}


def test_triggers_and_schedules_lead_to_the_tasks_that_start_with_an_execution() -> None:
    with Workflow("hourly") as wf:
        first = BashTask("first", command="true")
        BashTask("second", command="true").start_after(first)
        BashTask("ticker", command="true").schedule(interval=timedelta(minutes=5))
        restarted = BashTask("restarted", command="true", streaming=True)
        restarted.action_on_event_received("RESTART", "drift")
    wf.trigger_on("hour_complete").schedule(cron="0 * * * *", timezone="Europe/Berlin")
    dot = parse(wf.graph())
    assert dot.nodes[START_NODE]["shape"] == "circle"
    assert dot.edges_to(START_NODE) == [
        (dot.node_by_label("hour_complete"), {"label": "trigger", "style": "dashed"}),
        ("schedule (workflow)", {"style": "dashed"}),
    ]
    assert dot.nodes["schedule (workflow)"]["label"] == "0 * * * * (Europe/Berlin)"
    # A RESTART rule is no START rule: that task still starts with the execution.
    starts = {b for a, b, attrs in dot.edges if a == START_NODE}
    assert starts == {"first", "restarted"}
    assert dot.edges_to("ticker") == [("schedule ticker", {"style": "dashed"})]
    assert dot.nodes["schedule ticker"]["label"] == "every 0:05:00"
    # Without triggers or schedule there is no start node.
    with Workflow("plain") as plain:
        BashTask("a", command="true")
    assert START_NODE not in parse(plain.graph()).nodes


def test_a_notebook_shows_the_graph_as_svg() -> None:
    with Workflow("nb") as wf:
        BashTask("a", command="true")
    graph = wf.graph()
    assert isinstance(graph, graphviz.Digraph)
    assert graph.source == workflow_graph(wf).source
    bundle = graph._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith(("<?xml", "<svg"))


def test_the_model_imports_without_graphviz() -> None:
    code = (
        "import sys\n"
        "from aiflow_nb.workflow import Workflow, BashTask\n"
        "with Workflow('w') as wf:\n"
        "    BashTask('a', command='true')\n"
        "wf.to_spec()\n"
        "assert 'graphviz' not in sys.modules, 'graphviz imported'\n"
        "wf.graph()\n"
        "assert 'graphviz' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
