"""Draw a workflow with graphviz.

Tasks are boxes; a task-status rule is a solid edge from the upstream task
labelled with the status; an event rule is a dashed edge from an event node
(an ellipse); streaming tasks have a double border.  Given the task
executions of an execution, each task is filled with the color of its
latest status.

>>> from aiflow_nb import BashTask, Workflow
>>> with Workflow("wf") as wf:
...     a = BashTask("a", command="true")
...     b = BashTask("b", command="true").start_after(a)
>>> "a -> b" in workflow_graph(wf).source
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import graphviz

from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler.records import TaskExecution
from aiflow_nb.workflow import Condition, TaskAction, TaskStatusCondition, Workflow
from aiflow_nb.workflow.conditions import EventCondition, _Composite

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

_ACTION_LABEL = {TaskAction.START: "", TaskAction.STOP: "stop ", TaskAction.RESTART: "restart "}


def _leaves(condition: Condition) -> Iterable[Condition]:
    if isinstance(condition, _Composite):
        for c in condition.conditions:
            yield from _leaves(c)
    else:
        yield condition


def _quote(name: str) -> str:
    # The graphviz package quotes ids itself; quoting here too put the quotes into the ids, and an
    # edge end with a ':' is read as "node:port". Task names (NAME_PATTERN) have neither ':' nor spaces.
    return name


def workflow_graph(workflow: Workflow, task_executions: Iterable[TaskExecution] = ()) -> graphviz.Digraph:
    """The graph of ``workflow``, colored by the latest of ``task_executions``."""
    latest: dict[str, TaskExecution] = {}
    for te in task_executions:
        if te.task not in latest or te.seq >= latest[te.task].seq:
            latest[te.task] = te
    graph = graphviz.Digraph(name=workflow.name, graph_attr={"rankdir": "LR", "fontname": "Helvetica"})
    graph.attr("node", fontname="Helvetica", fontsize="11")
    graph.attr("edge", fontname="Helvetica", fontsize="9")
    for name, task in workflow.tasks.items():
        attrs: dict[str, Any] = {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff"}
        label = name
        if task.streaming:
            attrs["peripheries"] = "2"
            label += "\n(streaming)"
        run = latest.get(name)
        if run is not None:
            attrs["fillcolor"] = STATUS_COLORS[run.status.value]
            label += f"\n{run.status.value} #{run.seq}"
        graph.node(_quote(name), label=label, tooltip=task.kind, **attrs)
    events: dict[tuple[str, str], str] = {}  # (namespace, key) -> node id (a key may hold any character)
    for name, task in workflow.tasks.items():
        for rule in task.rules:
            prefix = _ACTION_LABEL[rule.action]
            for leaf in _leaves(rule.condition):
                if isinstance(leaf, TaskStatusCondition):
                    for upstream, status in leaf.statuses.items():
                        graph.edge(_quote(upstream), _quote(name), label=prefix + status.value)
                    continue
                for key in leaf.expect_events:
                    if key.key == event_keys.TASK_STATUS:
                        continue
                    ns = key.namespace or workflow.namespace
                    if (ns, key.key) not in events:
                        events[ns, key.key] = f"event {len(events) + 1}"
                        shown = key.key if ns == workflow.namespace else f"{key.key}@{ns}"
                        graph.node(events[ns, key.key], label=shown, shape="ellipse", style="dashed")
                    label = prefix + ("" if isinstance(leaf, EventCondition) else type(leaf).__name__)
                    graph.edge(events[ns, key.key], _quote(name), label=label.strip(), style="dashed")
        if task.schedule_ is not None:
            node = f"schedule {name}"
            spec = task.schedule_.cron or f"every {task.schedule_.interval}"
            graph.node(_quote(node), label=spec, shape="note", style="dashed")
            graph.edge(_quote(node), _quote(name), style="dashed")
    return graph


def workflow_svg(workflow: Workflow, task_executions: Iterable[TaskExecution] = ()) -> str:
    """The graph as SVG text (needs graphviz's ``dot`` program)."""
    svg: str = workflow_graph(workflow, task_executions).pipe(format="svg", encoding="utf-8")
    return svg
