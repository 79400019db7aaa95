"""A workflow, live: its graph, its executions and the task executions of the selected one."""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from aiflow_nb.client import Client
from aiflow_nb.errors import AiflowError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event
from aiflow_nb.scheduler import why
from aiflow_nb.widgets.formatting import FIT, duration, error_html, fit_svg, message_html, status_html, when
from aiflow_nb.widgets.live import LiveWidget
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution

log = logging.getLogger("aiflow_nb.widgets.workflow_view")

#: Where "open" writes executed notebooks, below the kernel's working folder.  Not a hidden
#: folder: Jupyter refuses to open files in hidden folders unless allow_hidden is set.
RUNS_DIR = "aiflow_runs"
#: Columns of the task table; each row also has stop, restart and open buttons (before the wide ones).
TASK_COLUMNS = ("task", "status", "seq", "start", "duration", "why", "error")
#: The columns that may be long: last in the grid, each on its own flexible track.
WIDE_COLUMNS = ("why", "error")
#: The end of a log shown under the table.
LOG_TAIL = 20_000


@dataclass
class TaskRow:
    """The widgets of one task execution in the table."""

    run: TaskExecution
    cells: dict[str, Any]
    stop: Any
    restart: Any
    open: Any

    def values(self) -> dict[str, str]:
        """What the row shows, as text."""
        return {name: _text(cell.value) for name, cell in self.cells.items()}

    def parts(self) -> list[Any]:
        """The grid's cells of the row: the columns, the buttons, then the cause and the error (they may be long)."""
        columns = [cell for name, cell in self.cells.items() if name not in WIDE_COLUMNS]
        return [*columns, self.stop, self.restart, self.open, *(self.cells[name] for name in WIDE_COLUMNS)]


def _text(value: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", value))


class WorkflowView(LiveWidget):
    """A workflow, live: its graph, its executions and the task executions of the selected one.

    The newest execution is selected until another is picked.  Each task's latest run has
    buttons to stop or restart the task; "open" writes the run's executed notebook to
    ``aiflow_runs/`` below the kernel's folder, links it and shows the run's log.
    """

    def __init__(
        self,
        client: Client,
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        limit: int = 20,
        throttle: float = 0.25,
        runs_dir: str | Path = RUNS_DIR,
    ) -> None:
        super().__init__(client, throttle, layout=FIT)
        self.name = name
        self.namespace = namespace
        self.limit = limit
        self.runs_dir = Path(runs_dir)
        self.title = widgets.HTML(f"<b>{html.escape(namespace)}/{html.escape(name)}</b>")
        self.graph = widgets.HTML(layout={**FIT, "overflow": "auto"})
        # As many rows as executions (up to ``rows``); "auto" width stays inside the output area.
        self.executions = widgets.Select(options=[], rows=1, description="executions", layout={**FIT, "width": "auto"})
        self.max_rows = 5
        self.stop_execution_button = widgets.Button(description="stop execution", icon="stop", disabled=True)
        self.refresh_button = widgets.Button(description="refresh", icon="refresh")
        self.tasks = widgets.GridBox(
            layout={
                **FIT,
                "grid_template_columns": "repeat(8, max-content) repeat(2, minmax(12em, 1fr))",
                "grid_gap": "2px 12px",
                "overflow": "auto",
            }
        )
        self.details = widgets.HTML(layout=FIT)
        self.task_rows: list[TaskRow] = []
        heads = {c: widgets.HTML(f"<b>{c}</b>") for c in TASK_COLUMNS}
        self._header = [w for c, w in heads.items() if c not in WIDE_COLUMNS] + [widgets.HTML() for _ in range(3)]
        self._header.extend(heads[c] for c in WIDE_COLUMNS)
        #: Each run's cause (short text, whole chain), asked once per run: a cause never changes.
        self._why: dict[int, tuple[str, str]] = {}
        self._selected: int | None = None  # None: follow the newest execution
        self._newest: int | None = None
        self._executions: list[WorkflowExecution] = []
        self._shown: tuple[Any, ...] | None = None
        self._updating: int | None = None  # the thread that sets the selection itself
        self.executions.observe(self._on_select, names="value")
        self.stop_execution_button.on_click(lambda _: self._act(self._stop_execution))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.children = [
            widgets.HBox(
                [self.title, self.refresh_button, self.stop_execution_button],
                layout={**FIT, "flex_flow": "row wrap", "align_items": "center"},
            ),
            self.message,
            self.graph,
            self.executions,
            self.tasks,
            self.details,
        ]
        self.refresh()
        self._start(f"view-{namespace}-{name}")

    @property
    def selected(self) -> int | None:
        """The execution whose task executions are shown."""
        value = self.executions.value
        return int(value) if value is not None else None

    def _wants(self, event: Event) -> bool:
        return (
            event.namespace == self.namespace
            and event.key in (event_keys.TASK_STATUS, event_keys.EXECUTION_STATUS)
            and isinstance(event.value, dict)
            and event.value.get("workflow") == self.name
        )

    def _draw(self) -> None:
        client = self.client
        executions = client.executions(workflow=self.name, namespace=self.namespace, limit=self.limit)
        ids = [e.id for e in executions]
        selected = self._selected if self._selected in ids else (ids[-1] if ids else None)
        runs = client.task_executions(selected) if selected is not None else []
        svg = client.graph_svg(self.name, self.namespace, execution=selected)
        current = next((e for e in executions if e.id == selected), None)
        self._show_executions(executions, selected)
        self._show_tasks(current, runs)
        self.graph.value = fit_svg(svg)

    def _counting(self) -> bool:
        rows_run = any(r.run.start_time is not None and r.run.end_time is None for r in self.task_rows)
        return rows_run or any(not e.status.finished for e in self._executions)

    def _count(self) -> None:
        for row in self.task_rows:
            if row.run.start_time is not None and row.run.end_time is None:
                row.cells["duration"].value = duration(row.run.start_time, None)
        if any(not e.status.finished for e in self._executions):
            self._show_executions(self._executions, self.selected)

    def _show_executions(self, executions: list[WorkflowExecution], selected: int | None) -> None:
        options = [
            (f"#{e.id}  {e.status.value}  {when(e.start_time)}  {duration(e.start_time, e.end_time)}", e.id)
            for e in reversed(executions)
        ]
        self._executions = executions
        self._newest = executions[-1].id if executions else None
        self._updating = threading.get_ident()
        try:
            if list(self.executions.options) != options:
                self.executions.options = options
                self.executions.rows = max(1, min(len(options), self.max_rows))
            if self.executions.value != selected:
                self.executions.value = selected
        finally:
            self._updating = None
        current = next((e for e in executions if e.id == selected), None)
        self.stop_execution_button.disabled = current is None or current.status.finished

    def _show_tasks(self, execution: WorkflowExecution | None, runs: list[TaskExecution]) -> None:
        active = execution is not None and not execution.status.finished
        latest: dict[str, TaskExecution] = {}
        for te in runs:
            if te.task not in latest or te.seq >= latest[te.task].seq:
                latest[te.task] = te
        shown = tuple(
            (te.id, te.status, te.seq, te.start_time, te.end_time, active, latest[te.task] is te) for te in runs
        )
        if shown == self._shown:
            return  # nothing changed: keep the widgets (and any focus on them)
        self._shown = shown
        old = self.task_rows
        self.task_rows = [self._row(te, active, latest[te.task] is te) for te in runs]
        self.tasks.children = self._header + [w for row in self.task_rows for w in row.parts()]
        for row in old:
            for widget in row.parts():
                widget.close()

    def _row(self, te: TaskExecution, active: bool, latest: bool) -> TaskRow:
        cells = {
            "task": widgets.HTML(html.escape(te.task)),
            "status": widgets.HTML(status_html(te.status.value, te.error)),
            "seq": widgets.HTML(str(te.seq)),
            "start": widgets.HTML(when(te.start_time)),
            "duration": widgets.HTML(duration(te.start_time, te.end_time)),
            "why": widgets.HTML(self._why_cell(te.id)),
            "error": widgets.HTML(error_html(te.error)),
        }
        small = {"width": "auto"}
        stop = widgets.Button(description="stop", layout=small, disabled=not (latest and active and te.status.alive))
        restart = widgets.Button(description="restart", layout=small, disabled=not (latest and active))
        opener = widgets.Button(description="open", layout=small, tooltip="executed notebook and log")
        execution_id, task = te.execution_id, te.task
        stop.on_click(lambda _: self._act(lambda: self._task_action("stop", execution_id, task)))
        restart.on_click(lambda _: self._act(lambda: self._task_action("restart", execution_id, task)))
        opener.on_click(lambda _: self._act(lambda: self.open_run(te)))
        return TaskRow(te, cells, stop, restart, opener)

    def _why_cell(self, te_id: int) -> str:
        """The run's cause in a few words, the whole chain as its tooltip (asked of the service once)."""
        if te_id not in self._why:
            try:
                links = self.client.why(te_id)
            except AiflowError as exc:
                log.info("why of task execution %s: %s", te_id, exc)
                return ""  # asked again with the next redraw of the rows
            self._why[te_id] = (why.short(links), why.line(links))
        text, chain = self._why[te_id]
        return f'<span title="{html.escape(chain)}">{html.escape(text)}</span>'

    # Actions (buttons run them in the kernel; each is one short request).
    def _act(self, action: Callable[[], str]) -> None:
        # What an action says stays until the next action (a redraw only clears its own errors).
        self._error_shown = False
        try:
            self.message.value = message_html(action())
        except AiflowError as exc:
            self.message.value = message_html(str(exc), error=True)
            return
        self.refresh()

    def _task_action(self, action: str, execution_id: int, task: str) -> str:
        getattr(self.client, f"{action}_task")(execution_id, task)
        return f"{action}: task {task} of execution {execution_id}"

    def _stop_execution(self) -> str:
        selected = self.selected
        if selected is None:
            return "no execution selected"
        self.client.stop_execution(selected)
        return f"stopping execution {selected}"

    def open_run(self, te: TaskExecution) -> str:
        """Show a run's log and, for a notebook task, write its executed notebook and link it."""
        parts = [f"<b>{html.escape(te.task)} #{te.seq}</b> (task execution {te.id})"]
        try:
            notebook = self.client.task_notebook(te.id)
        except AiflowError:
            notebook = None
        if notebook is not None:
            path = self.runs_dir / f"{self.name}-{te.task}-{te.seq}-{te.id}.ipynb"
            target = path if path.is_absolute() else Path.cwd() / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(notebook, indent=1) + "\n")
            href = urllib.parse.quote(path.as_posix())
            parts.append(f'<a href="{href}" target="_blank" rel="noopener">{html.escape(path.as_posix())}</a>')
        text = self.client.task_log(te.id)
        tail = text[-LOG_TAIL:]
        parts.append(
            '<pre style="max-height:20em;overflow:auto;white-space:pre-wrap">'
            + html.escape(tail if tail else "(no log yet)")
            + "</pre>"
        )
        self.details.value = "<br>".join(parts)
        return f"opened task execution {te.id}" + (f": {path.as_posix()}" if notebook is not None else "")

    def _on_select(self, change: dict[str, Any]) -> None:
        if self._updating == threading.get_ident():
            return  # our own redraw, not a pick
        new = change["new"]
        # Picking the newest means: follow the newest, also when another one starts.
        self._selected = None if new is None or new == self._newest else int(new)
        self.refresh()
