"""Live notebook widgets: a workflow's runs (:class:`WorkflowView`), every workflow
(:class:`WorkflowList`) and the event log (:class:`EventFeed`).

Both talk to the service only through a :class:`~aiflow_nb.client.Client`.
A background daemon thread follows the event log (``Client.stream``) and marks
the widget dirty when an event matters; a second one redraws it at most
every ``throttle`` seconds, so the kernel is never blocked and a burst of
events costs one redraw.  While something shown is running, the painter also
ticks every :data:`TICK` seconds to count its duration on (no service read).
``close()`` (or the end of the kernel) stops both threads.

>>> WorkflowView(Client(), "hourly")          # doctest: +SKIP
>>> WorkflowList(Client())                     # doctest: +SKIP
>>> EventFeed(Client(), key="hour_complete")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import html
import json
import logging
import re
import threading
import time
import urllib.parse
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from aiflow_nb.client import Client
from aiflow_nb.errors import AiflowError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event
from aiflow_nb.scheduler import why
from aiflow_nb.tables import WORKFLOW_COLUMNS, duration_text, workflow_row
from aiflow_nb.workflow.graph import STATUS_COLORS
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo

log = logging.getLogger("aiflow_nb.widgets")

#: Where "open" writes executed notebooks, below the kernel's working folder.  Not a hidden
#: folder: Jupyter refuses to open files in hidden folders unless allow_hidden is set.
RUNS_DIR = "aiflow_runs"
#: Columns of the task table; each row also has stop, restart and open buttons (before the error).
TASK_COLUMNS = ("task", "status", "seq", "start", "duration", "why", "error")
#: The columns that may be long: last in the grid, each on its own flexible track.
WIDE_COLUMNS = ("why", "error")
#: Seconds between two counts of a running duration.
TICK = 1.0
#: An error longer than this is cut on its row (the whole text is its tooltip).
ERROR_SHOWN = 300
#: Layout of a widget that fits its output area (a narrow split view too): never wider than it.
FIT = {"max_width": "100%"}
#: How long close() waits for the threads (the stream notices a stop within about a second).
JOIN_TIMEOUT = 5.0
#: Pause before following again after the stream failed.
RETRY_DELAY = 2.0
#: The end of a log shown under the table.
LOG_TAIL = 20_000

_LIVE: weakref.WeakSet[_LiveWidget] = weakref.WeakSet()


def stop_all() -> None:
    """Stop the threads of every live widget (run at exit, so a kernel shuts down cleanly)."""
    live = list(_LIVE)
    for widget in live:  # all at once, so they wind down together
        widget._signal_stop()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for widget in live:
        widget.stop(deadline)


atexit.register(stop_all)


# -- formatting -------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _duration(start: datetime | None, end: datetime | None) -> str:
    return duration_text(start, end, _now())


def _status(status: str, error: str | None = None) -> str:
    color = STATUS_COLORS.get(status, "#ffffff")
    title = f' title="{html.escape(error)}"' if error else ""
    return f'<span style="background:{color};padding:0 4px;border-radius:3px"{title}>{html.escape(status)}</span>'


def _error(text: str | None) -> str:
    if not text:
        return ""
    shown = text if len(text) <= ERROR_SHOWN else text[:ERROR_SHOWN] + "…"
    return (
        f'<span style="color:#b00020;white-space:pre-wrap;overflow-wrap:anywhere" title="{html.escape(text)}">'
        f"{html.escape(shown)}</span>"
    )


def _fit_svg(svg: str) -> str:
    """The SVG from its ``<svg`` tag on, scaled down to the width it gets (never up, never clipped)."""
    if "<svg" not in svg:
        return svg
    svg = svg[svg.find("<svg") :]
    return '<svg style="max-width:100%;height:auto"' + svg[len("<svg") :]


def _message(text: str, error: bool = False) -> str:
    color = "#b00020" if error else "#333333"
    return f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


# -- the live machinery -----------------------------------------------------------------------


class _LiveWidget(widgets.VBox):  # type: ignore[misc]
    """A VBox redrawn by :meth:`refresh` whenever the event stream brings an event it wants."""

    def __init__(self, client: Client, throttle: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.throttle = throttle
        self.message = widgets.HTML()
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error_shown = False

    # Hooks of the subclasses.
    def _begin(self) -> int:
        """Pin the stream position (loading what the widget needs from before it); return it."""
        return int(self.client.health()["latest_offset"])

    def _wants(self, event: Event) -> bool:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError

    def _counting(self) -> bool:
        """Whether something shown is running (so its duration counts on)."""
        return False

    def _count(self) -> None:
        """Count the running durations on from what was last read (no request)."""

    #: Whether a redraw reads the service (so one that works shows the service is back).
    _draw_reads_service = True

    def _show_error(self, text: str) -> None:
        self._error_shown = True
        self.message.value = _message(text, error=True)

    def _clear_error(self) -> None:
        if self._error_shown:
            self._error_shown = False
            self.message.value = ""

    def _followed(self) -> None:
        # The service answers; a widget whose redraws read the service lets the next redraw say so.
        if not self._draw_reads_service:
            self._clear_error()

    # Public.
    def refresh(self) -> None:
        """Read the service and redraw (the follower thread calls this after relevant events)."""
        if self._closing.is_set():
            return
        with self._lock:
            try:
                self._draw()
            except AiflowError as exc:
                self._show_error(str(exc))
                return
            if self._draw_reads_service:
                self._clear_error()

    @property
    def running(self) -> bool:
        """Whether the widget still follows the service."""
        return any(t.is_alive() for t in self._threads)

    def stop(self, deadline: float | None = None) -> None:
        """Stop following the service (waiting for the threads until ``deadline``); the widget stays."""
        self._signal_stop()
        if deadline is None:
            deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        _LIVE.discard(self)

    def _signal_stop(self) -> None:
        self._closing.set()
        self._dirty.set()  # wakes the painter

    def close(self) -> None:
        """Stop following and close the widget and its parts."""
        self.stop()
        # Not under the lock: a redraw stuck in a slow request must not hold up the close (redrawing
        # a closed widget only changes values nobody sees).
        for child in self.children:
            _close_tree(child)
        super().close()

    # The threads.
    def _start(self, name: str) -> None:
        self._threads = [
            threading.Thread(target=self._follow, name=f"aiflow-{name}-stream", daemon=True),
            threading.Thread(target=self._paint, name=f"aiflow-{name}-paint", daemon=True),
        ]
        _LIVE.add(self)
        for thread in self._threads:
            thread.start()

    def _follow(self) -> None:
        since: int | None = None
        while not self._closing.is_set():
            try:
                if since is None:
                    since = self._begin()
                    self._followed()
                    self._dirty.set()  # what changed before the stream position was pinned
                for event in self.client.stream(since, stop=self._closing):
                    since = max(since, event.offset or 0)
                    self._followed()
                    if self._wants(event):
                        self._dirty.set()
            except Exception as exc:
                # Whatever goes wrong, keep following: the service may come back.
                log.warning("%s: following the service failed: %s", type(self).__name__, exc)
                if not self._closing.is_set():
                    self._show_error(f"not following the service: {exc}")
                self._closing.wait(RETRY_DELAY)

    def tick(self) -> None:
        """Count the running durations on (the painter calls this every TICK seconds while any runs)."""
        if self._closing.is_set():
            return
        with self._lock:
            self._count()

    def _paint(self) -> None:
        while True:
            dirty = self._dirty.wait(TICK if self._counting() else None)
            if self._closing.is_set():
                return
            try:
                if dirty:
                    self._dirty.clear()
                    self.refresh()
                else:
                    self.tick()
            except Exception as exc:
                log.warning("%s: redraw failed: %s", type(self).__name__, exc, exc_info=True)
                self._show_error(f"redraw failed: {exc}")
            self._closing.wait(self.throttle)


# -- WorkflowView -------------------------------------------------------------------------------


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


class WorkflowView(_LiveWidget):
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
        self.graph.value = _fit_svg(svg)

    def _counting(self) -> bool:
        rows_run = any(r.run.start_time is not None and r.run.end_time is None for r in self.task_rows)
        return rows_run or any(not e.status.finished for e in self._executions)

    def _count(self) -> None:
        for row in self.task_rows:
            if row.run.start_time is not None and row.run.end_time is None:
                row.cells["duration"].value = _duration(row.run.start_time, None)
        if any(not e.status.finished for e in self._executions):
            self._show_executions(self._executions, self.selected)

    def _show_executions(self, executions: list[WorkflowExecution], selected: int | None) -> None:
        options = [
            (f"#{e.id}  {e.status.value}  {_when(e.start_time)}  {_duration(e.start_time, e.end_time)}", e.id)
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
            "status": widgets.HTML(_status(te.status.value, te.error)),
            "seq": widgets.HTML(str(te.seq)),
            "start": widgets.HTML(_when(te.start_time)),
            "duration": widgets.HTML(_duration(te.start_time, te.end_time)),
            "why": widgets.HTML(self._why_cell(te.id)),
            "error": widgets.HTML(_error(te.error)),
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
            self.message.value = _message(action())
        except AiflowError as exc:
            self.message.value = _message(str(exc), error=True)
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


# -- EventFeed ----------------------------------------------------------------------------------


class EventFeed(_LiveWidget):
    """The newest events, live, newest first; the filter shows events whose key contains its text.

    The user's events are shown; the service's own (``aiflow.*`` status events) only when
    :attr:`service_events` is ticked (or ``service_events=True``).  ``namespace`` keeps only
    that namespace's events.  It keeps the last ``history`` events and shows at most ``limit``.
    """

    _draw_reads_service = False  # it redraws what it keeps

    def __init__(
        self,
        client: Client,
        key: str | None = None,
        namespace: str | None = None,
        *,
        limit: int = 50,
        history: int = 1000,
        throttle: float = 0.25,
        service_events: bool = False,
    ) -> None:
        super().__init__(client, throttle, layout=FIT)
        self.namespace = namespace
        self.limit = limit
        self.history = history
        whole = {"description_width": "initial"}  # the label in full, not "key contai..."
        self.filter = widgets.Text(value=key or "", placeholder="any key", description="key contains", style=whole)
        self.service_events = widgets.Checkbox(
            value=service_events, description=f"{event_keys.RESERVED_PREFIX}* events", indent=False, style=whole
        )
        self.service_events.layout.width = "auto"
        self.count = widgets.HTML()
        self.table = widgets.HTML(layout={**FIT, "overflow": "auto"})
        self.shown: list[Event] = []
        self._events: deque[Event] = deque(maxlen=history)
        self._since: int | None = None
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.service_events.observe(lambda _: self.refresh(), names="value")
        bar = widgets.HBox(
            [self.filter, self.service_events, self.count],
            layout={**FIT, "flex_flow": "row wrap", "align_items": "center", "grid_gap": "0 12px"},
        )
        self.children = [bar, self.message, self.table]
        try:
            self._since = self._load()
        except AiflowError as exc:
            self._show_error(str(exc))
        self.refresh()
        self._start("events")

    def _load(self) -> int:
        latest = int(self.client.health()["latest_offset"])
        start = max(0, latest - self.history)
        events = self.client.events(since=start, limit=self.history, namespace=self.namespace)
        with self._lock:
            self._events.extend(events)
        return (events[-1].offset or start) if events else start

    def _begin(self) -> int:
        if self._since is None:
            self._since = self._load()
        return self._since

    def _wants(self, event: Event) -> bool:
        if self.namespace is not None and event.namespace != self.namespace:
            return False
        with self._lock:
            self._events.append(event)
        return True

    def _draw(self) -> None:
        text = self.filter.value.strip().lower()
        with self._lock:
            events = list(self._events)
        own = self.service_events.value
        matching = [
            e
            for e in reversed(events)
            if text in e.key.lower() and (own or not e.key.startswith(event_keys.RESERVED_PREFIX))
        ]
        self.shown = matching[: self.limit]
        self.count.value = f"{len(self.shown)} of {len(matching)} matching, {len(events)} kept"
        self.table.value = _event_table(self.shown)


#: Cells of a table: apart from each other; one line each but the last column's (a value wraps).
_CELL = "padding:1px 12px 1px 0;text-align:left;vertical-align:top;white-space:nowrap"
_LAST_CELL = "padding:1px 0;text-align:left;vertical-align:top;overflow-wrap:anywhere"


def _html_table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of HTML cells (already escaped)."""
    columns = list(columns)

    def line(tag: str, cells: list[str]) -> str:
        styles = [_CELL] * (len(cells) - 1) + [_LAST_CELL]
        return (
            "<tr>" + "".join(f'<{tag} style="{st}">{c}</{tag}>' for st, c in zip(styles, cells, strict=True)) + "</tr>"
        )

    body = "".join(line("td", list(r)) for r in rows)
    return (
        '<table style="font-family:monospace;font-size:12px;border-collapse:collapse"><thead>'
        + line("th", columns)
        + "</thead><tbody>"
        + body
        + "</tbody></table>"
    )


def _event_table(events: Iterable[Event]) -> str:
    rows = []
    for e in events:
        value = e.value if isinstance(e.value, str) else json.dumps(e.value, default=str)
        if len(value) > 200:
            value = value[:200] + "…"
        cells = (str(e.offset), _when(e.create_time), e.namespace, e.key, e.sender or "", value)
        rows.append([html.escape(c) for c in cells])
    return _html_table(("offset", "time", "namespace", "key", "sender", "value"), rows)


# -- WorkflowList -------------------------------------------------------------------------------


class WorkflowList(_LiveWidget):
    """Every submitted workflow, live: its version, whether it is paused, its latest execution.

    It redraws when an execution changes status or a workflow is submitted, paused,
    resumed or deleted.
    """

    _KEYS = frozenset(
        {
            event_keys.EXECUTION_STATUS,
            event_keys.WORKFLOW_SUBMITTED,
            event_keys.WORKFLOW_PAUSED,
            event_keys.WORKFLOW_RESUMED,
            event_keys.WORKFLOW_DELETED,
        }
    )

    def __init__(self, client: Client, *, throttle: float = 0.25) -> None:
        super().__init__(client, throttle, layout=FIT)
        self.table = widgets.HTML(layout={**FIT, "overflow": "auto"})
        self.shown: list[WorkflowInfo] = []
        self.children = [self.message, self.table]
        self.refresh()
        self._start("workflows")

    def rows(self) -> list[dict[str, str]]:
        """What each row shows, as text, by column."""
        return [
            {c: "" if r.get(c) is None else str(r[c]) for c in WORKFLOW_COLUMNS} for r in map(workflow_row, self.shown)
        ]

    def _wants(self, event: Event) -> bool:
        return event.key in self._KEYS

    def _draw(self) -> None:
        self.shown = self.client.workflows()
        rows = []
        for info, row in zip(self.shown, self.rows(), strict=True):
            cells = {c: html.escape(v) for c, v in row.items()}
            latest = info.latest_execution
            if latest is not None:
                cells["latest"] = f"#{latest.id} {_status(latest.status.value)}"
            rows.append([cells[c] for c in WORKFLOW_COLUMNS])
        self.table.value = _html_table(WORKFLOW_COLUMNS, rows) if rows else _message("no workflow is submitted yet")


def replay_html(result: Any) -> str:
    """A replay (:class:`aiflow_nb.scheduler.dryrun.Replay`) as HTML: a table of the would-be runs and a timeline.

    The timeline has a row per task and a bar per run, placed by the offset of the event that caused it over
    the window (a run made by a command sits just after the item before it); no plotting library.
    """
    since, until = result.since, result.until
    span = max(until - since, 1)
    runs = [i for i in result.items if i["kind"] == "run"]
    tasks = sorted({i["task"] for i in runs})
    width, row, label = 600, 18, 120
    bars, place = [], 0.0
    for item in result.items:
        if item.get("offset"):
            place = min(max((item["offset"] - since) / span, 0.0), 1.0)
        if item["kind"] != "run":
            continue
        x = label + place * (width - label - 6)
        y = tasks.index(item["task"]) * row
        color = STATUS_COLORS.get(item["status"], "#999")
        title = html.escape(f"{item['task']} #{item['seq']} {item['status']}: {item['cause']}")
        bars.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="6" height="{row - 6}" fill="{color}"><title>{title}</title></rect>'
        )
    names = "".join(
        f'<text x="0" y="{n * row + row - 5}" font-size="12">{html.escape(task)}</text>' for n, task in enumerate(tasks)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{max(len(tasks), 1) * row + 14}">'
        f'{names}{"".join(bars)}<text x="{label}" y="{max(len(tasks), 1) * row + 12}" font-size="10">'
        f'offset {since}</text><text x="{width - 60}" y="{max(len(tasks), 1) * row + 12}" font-size="10">'
        f"offset {until}</text></svg>"
    )
    head = "".join(f"<th>{h}</th>" for h in ("kind", "id", "task", "status", "cause", "event"))
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                i["kind"], i["id"], f"{i['task']} #{i['seq']}" if i["kind"] == "run" else "", i["status"],
                i["cause"], f"{i['offset']} {i['key']}" if i.get("offset") else "",
            )
        )
        + "</tr>"
        for i in result.items
    )  # fmt: skip
    lines = "".join(f"<div>{html.escape(text)}</div>" for text in result.lines()[len(result.items) :])
    return f"<div class='aiflow-replay'>{svg}<table><tr>{head}</tr>{body}</table>{lines}</div>"
