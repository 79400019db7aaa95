"""Draw a workflow with graphviz.

Tasks are boxes; a task-status rule is a solid edge from the upstream task
labelled with the status; an event rule is a dashed edge from an event node
(an ellipse); streaming tasks have a double border and say so.  A workflow
with triggers or a schedule gets an "execution start" node that leads to
the tasks that start with an execution.  Given the status of each task
(the latest run's, see :func:`aiflow_nb.workflow.records.latest_statuses`),
each task is filled with its status's color.

>>> from aiflow_nb import BashTask, Workflow
>>> with Workflow("wf") as wf:
...     a = BashTask("a", command="true")
...     b = BashTask("b", command="true").start_after(a)
>>> "a -> b" in workflow_graph(wf).source
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import graphviz

from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow.conditions import Condition, EventCondition, TaskStatusCondition, _Composite
from aiflow_nb.workflow.status import TaskAction, TaskStatus

if TYPE_CHECKING:
    # Only for hints: the widgets import STATUS_COLORS from here, and the tasks module pulls in nbformat.
    from aiflow_nb.workflow import Schedule, Workflow

#: Fill color of a task by the status of its latest run (none: white).
STATUS_COLORS = {
    "INIT": "#ffffff",
    "QUEUED": "#d9d9d9",
    "RUNNING": "#9ecae1",
    "SUCCESS": "#a1d99b",
    "FAILED": "#fc9272",
    "STOPPING": "#fdd0a2",
    "STOPPED": "#bdbdbd",
    "RETRYING": "#fdae6b",
}

#: Node id of the start of an execution; task names cannot hold a space, so it never clashes.
START_NODE = "execution start"

_ACTION_LABEL = {TaskAction.START: "", TaskAction.STOP: "stop ", TaskAction.RESTART: "restart "}


def _leaves(condition: Condition) -> Iterable[Condition]:
    if isinstance(condition, _Composite):
        for c in condition.conditions:
            yield from _leaves(c)
    else:
        yield condition


def _schedule_label(schedule: Schedule) -> str:
    if schedule.cron is not None:
        return schedule.cron if schedule.timezone == "UTC" else f"{schedule.cron} ({schedule.timezone})"
    return f"every {schedule.interval}"


class _Drawing:
    """One graph being drawn; event nodes are shared by every rule that waits on the same event."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.graph = graphviz.Digraph(name=workflow.name, graph_attr={"rankdir": "LR", "fontname": "Helvetica"})
        self.graph.attr("node", fontname="Helvetica", fontsize="11")
        self.graph.attr("edge", fontname="Helvetica", fontsize="9")
        self.events: dict[tuple[str, str], str] = {}  # (namespace, key) -> node id (a key may hold any character)

    def event_node(self, namespace: str | None, key: str) -> str:
        ns = namespace or self.workflow.namespace
        if (ns, key) not in self.events:
            self.events[ns, key] = f"event {len(self.events) + 1}"
            shown = key if ns == self.workflow.namespace else f"{key}@{ns}"
            self.graph.node(self.events[ns, key], label=graphviz.escape(shown), shape="ellipse", style="dashed")
        return self.events[ns, key]

    def condition_edges(self, condition: Condition, target: str, prefix: str) -> None:
        """Edges from what ``condition`` waits on to ``target``."""
        for leaf in _leaves(condition):
            if isinstance(leaf, TaskStatusCondition):
                for upstream, status in leaf.statuses.items():
                    self.graph.edge(upstream, target, label=prefix + status.value)
                continue
            for key in leaf.expect_events:
                if key.key == event_keys.TASK_STATUS:
                    continue
                label = prefix + ("" if isinstance(leaf, EventCondition) else type(leaf).__name__)
                self.graph.edge(self.event_node(key.namespace, key.key), target, label=label.strip(), style="dashed")

    def schedule_edge(self, schedule: Schedule, node: str, target: str) -> None:
        self.graph.node(node, label=graphviz.escape(_schedule_label(schedule)), shape="note", style="dashed")
        self.graph.edge(node, target, style="dashed")


def workflow_graph(workflow: Workflow, statuses: Mapping[str, TaskStatus] | None = None) -> graphviz.Digraph:
    """The graph of ``workflow``, each task colored by its status in ``statuses`` (task name -> status)."""
    statuses = statuses or {}
    drawing = _Drawing(workflow)
    graph = drawing.graph
    for name, task in workflow.tasks.items():
        attrs: dict[str, Any] = {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff"}
        label = name
        if task.kind_name not in ("notebook", "python", "bash"):
            label += f"\n[{task.kind_name}]"  # the operator
        if task.streaming:
            attrs["peripheries"] = "2"
            label += "\n(streaming)"
        status = statuses.get(name)
        if status is not None:
            attrs["fillcolor"] = STATUS_COLORS[status.value]
            label += f"\n{status.value}"
        graph.node(name, label=label, tooltip=task.kind_name, **attrs)
    if workflow.triggers or workflow.schedule_ is not None:
        graph.node(START_NODE, label="start", shape="circle", style="dashed", fontsize="9")
        for trigger in workflow.triggers:
            drawing.condition_edges(trigger, START_NODE, "trigger ")
        if workflow.schedule_ is not None:
            drawing.schedule_edge(workflow.schedule_, "schedule (workflow)", START_NODE)
        for name, task in workflow.tasks.items():
            if not task.has_start_rule:
                graph.edge(START_NODE, name, style="dotted")
    for name, task in workflow.tasks.items():
        for rule in task.rules:
            drawing.condition_edges(rule.condition, name, _ACTION_LABEL[rule.action])
        if task.schedule_ is not None:
            drawing.schedule_edge(task.schedule_, f"schedule {name}", name)
    return graph


def workflow_svg(workflow: Workflow, statuses: Mapping[str, TaskStatus] | None = None) -> str:
    """The graph as SVG text (needs graphviz's ``dot`` program)."""
    svg: str = workflow_graph(workflow, statuses).pipe(format="svg", encoding="utf-8")
    return svg
