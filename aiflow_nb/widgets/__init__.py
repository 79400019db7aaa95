"""Live notebook widgets, one module each: a workflow's runs (:class:`WorkflowView`), every workflow
(:class:`WorkflowList`) and the event log (:class:`EventFeed`).

They talk to the service only through a :class:`~aiflow_nb.client.Client`.
A background daemon thread follows the event log (``Client.stream``) and marks
the widget dirty when an event matters; a second one redraws it at most
every ``throttle`` seconds, so the kernel is never blocked and a burst of
events costs one redraw.  While something shown is running, the painter also
ticks every :data:`.live.TICK` seconds to count its duration on (no service read).
``close()`` (or the end of the kernel) stops both threads.

>>> WorkflowView(Client(), "hourly")          # doctest: +SKIP
>>> WorkflowList(Client())                     # doctest: +SKIP
>>> EventFeed(Client(), key="hour_complete")  # doctest: +SKIP
"""

from __future__ import annotations

from aiflow_nb.widgets.event_feed import EventFeed
from aiflow_nb.widgets.live import stop_all
from aiflow_nb.widgets.replay import replay_html
from aiflow_nb.widgets.workflow_list import WorkflowList
from aiflow_nb.widgets.workflow_view import RUNS_DIR, TASK_COLUMNS, TaskRow, WorkflowView

__all__ = [
    "RUNS_DIR",
    "TASK_COLUMNS",
    "EventFeed",
    "TaskRow",
    "WorkflowList",
    "WorkflowView",
    "replay_html",
    "stop_all",
]
