"""Every submitted workflow, live."""

from __future__ import annotations

import html

import ipywidgets as widgets  # type: ignore[import-untyped]

from aiflow_nb.client import Client
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import Event
from aiflow_nb.tables import WORKFLOW_COLUMNS, workflow_row
from aiflow_nb.widgets.formatting import FIT, html_table, message_html, status_html
from aiflow_nb.widgets.live import LiveWidget
from aiflow_nb.workflow.records import WorkflowInfo


class WorkflowList(LiveWidget):
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
                cells["latest"] = f"#{latest.id} {status_html(latest.status.value)}"
            rows.append([cells[c] for c in WORKFLOW_COLUMNS])
        self.table.value = html_table(WORKFLOW_COLUMNS, rows) if rows else message_html("no workflow is submitted yet")
