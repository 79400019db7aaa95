"""The one API of aiflow-nb: in-process (``Engine``) or over HTTP (``Client``).

Both implement :class:`AiflowApi` with the same method names, arguments and
records, so code written against one runs against the other:

>>> def latest_status(api: AiflowApi, workflow: str) -> str | None:
...     latest = api.workflow_info(workflow).latest_execution
...     return latest.status.value if latest else None
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event

if TYPE_CHECKING:
    from aiflow_nb.scheduler.dryrun import Replay
    from aiflow_nb.workflow.records import TaskExecution, WhyLink, WorkflowExecution, WorkflowInfo
    from aiflow_nb.workflow.status import WorkflowStatus
    from aiflow_nb.workflow.workflow import Workflow


@runtime_checkable
class AiflowApi(Protocol):
    """What an engine and a client both offer.  Mistakes raise :mod:`aiflow_nb.errors` types."""

    # -- workflows ---------------------------------------------------------------

    def submit(self, workflow: Workflow) -> int:
        """Store a new version of ``workflow`` (unless unchanged) and return its version."""
        ...

    def workflows(self) -> list[WorkflowInfo]:
        """Every submitted workflow, with its newest execution and next scheduled runs."""
        ...

    def workflow_info(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> WorkflowInfo: ...

    def workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE, version: int | None = None) -> Workflow:
        """The workflow as submitted (its latest version, or ``version``)."""
        ...

    def delete_workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Stop its running executions and forget the workflow (its history stays)."""
        ...

    def pause(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """No trigger or schedule starts it until :meth:`resume`."""
        ...

    def resume(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None: ...

    def next_runs(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, datetime]:
        """When each schedule is next due: ``""`` for the workflow's own, else the task's name."""
        ...

    def backfill(self, name: str, start: datetime, end: datetime, namespace: str = DEFAULT_NAMESPACE) -> int:
        """Send the ticks the workflow's schedule had due from ``start`` to ``end``; returns how many."""
        ...

    def graph_svg(self, name: str, namespace: str = DEFAULT_NAMESPACE, execution: int | None = None) -> str:
        """The workflow's graph as SVG, colored by an execution's runs (default: the newest execution's)."""
        ...

    # -- executions ----------------------------------------------------------------

    def start_execution(
        self, name: str, namespace: str = DEFAULT_NAMESPACE, parameters: dict[str, Any] | None = None
    ) -> int:
        """Start an execution of the workflow's latest version; returns its id.

        ``parameters`` override those of its tasks that declare them, for this execution only.
        """
        ...

    def stop_execution(self, execution_id: int) -> WorkflowExecution:
        """Stop a running execution and its running tasks; returns it, STOPPED."""
        ...

    def execution(self, execution_id: int) -> WorkflowExecution: ...

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: WorkflowStatus | str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        """Executions, oldest first (the newest ``limit`` of them with a limit)."""
        ...

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        """Every task execution of an execution, oldest first."""
        ...

    def task_execution(self, task_execution_id: int) -> TaskExecution: ...

    def start_task(self, execution_id: int, task: str, parameters: dict[str, Any] | None = None) -> list[TaskExecution]:
        """START ``task`` in a running execution (nothing if it is alive); returns the task's runs.

        ``parameters`` override the task's own for the run this starts.
        """
        ...

    def stop_task(self, execution_id: int, task: str) -> list[TaskExecution]: ...

    def restart_task(self, execution_id: int, task: str) -> list[TaskExecution]: ...

    def task_log(self, task_execution_id: int) -> str:
        """What the run's latest attempt wrote to stdout and stderr."""
        ...

    def task_notebook(self, task_execution_id: int) -> dict[str, Any]:
        """The executed notebook of a notebook task's latest attempt (nbformat JSON)."""
        ...

    def why(self, task_execution_id: int) -> list[WhyLink]:
        """Why the run was made: the chain of causes, the run first, the outside event or command last."""
        ...

    def why_execution(self, execution_id: int) -> list[WhyLink]:
        """Why the execution was made, as :meth:`why`."""
        ...

    def replay(
        self,
        workflow: Workflow,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        outcomes: str = "recorded",
        diff: bool = False,
    ) -> Replay:
        """What ``workflow`` would have made over the logged window; nothing written or launched."""
        ...

    # -- events ----------------------------------------------------------------------

    def send_event(
        self,
        key: str,
        value: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        sender: str | None = None,
        context: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append an event to the log and return its offset.

        ``idempotency_key`` is the event's own: the same key sent again later,
        by anyone, appends nothing and returns the first event's offset.  The
        rules react in the transaction that appends it.
        """
        ...

    def send_events(self, events: Sequence[Event], idempotency_keys: Sequence[str | None] | None = None) -> list[int]:
        """Append events in one transaction (all or none) and return their offsets.

        ``idempotency_keys``: one per event, or None (see :meth:`send_event`).
        """
        ...

    def events(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        """The events after offset ``since``, oldest first, at most ``limit``, matching every filter given."""
        ...

    def stream(self, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after ``since``, then each new one as it is committed, until ``stop`` is set."""
        ...

    def close(self) -> None: ...
