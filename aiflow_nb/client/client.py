"""``Client``: the engine's API (:class:`~aiflow_nb.workflow.api.AiflowApi`) over HTTP.

It finds the service from ``url``/``token``, else ``AIFLOW_NB_URL`` /
``AIFLOW_NB_TOKEN``, else ``server.json`` in the home (``AIFLOW_NB_HOME`` or
``~/.aiflow_nb``); it returns the engine's records and raises the engine's
:mod:`aiflow_nb.errors` types.

>>> client = Client()                                       # doctest: +SKIP
>>> client.send_event("hour_complete", {"hour": "10:00"})   # doctest: +SKIP
42
"""

from __future__ import annotations

import os
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiflow_nb import errors
from aiflow_nb.client import discovery, stream
from aiflow_nb.client.bodies import Lines, json_body, ndjson_chunks
from aiflow_nb.client.http import Http
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event, encode
from aiflow_nb.home import default_home
from aiflow_nb.workflow.records import TaskExecution, WhyLink, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.status import WorkflowStatus

if TYPE_CHECKING:
    # Imported when used: it brings nbformat, which a task's send_event does not need.
    from aiflow_nb.scheduler.dryrun import Replay
    from aiflow_nb.workflow.workflow import Workflow


class Client:
    """The engine's API over HTTP: the same methods, arguments, records and errors."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        home: str | Path | None = None,
        timeout: float = 60.0,
        retry_for: float = 30.0,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        given = (url or os.environ.get("AIFLOW_NB_URL"), token or os.environ.get("AIFLOW_NB_TOKEN"))
        self._http = Http(lambda: discovery.find(*given, self.home), timeout=timeout, retry_for=retry_for)

    @property
    def url(self) -> str:
        """The service's URL (found again when the service restarts)."""
        return self._http.endpoint.url

    @property
    def token(self) -> str:
        return self._http.endpoint.token

    @property
    def timeout(self) -> float:
        return self._http.timeout

    @property
    def retry_for(self) -> float:
        return self._http.retry_for

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._http.close()

    def __del__(self) -> None:
        # A forgotten client must not leak sockets (nor ResourceWarnings).
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        *,
        retry: bool = False,
        raw: bool = False,
        keyed: bool = False,
    ) -> Any:
        """Call the REST API directly (``path`` below ``/api/v1``): ``body`` as JSON, the answer's JSON back.

        ``retry`` repeats it while the service does not answer (only for safe
        calls); ``keyed`` sends an ``Idempotency-Key``, the same on every try;
        ``raw`` returns the answer's bytes.
        """
        payload = json_body(body) if body is not None else None
        response = self._http.call(method, path, body=payload, params=params, retry=retry, keyed=keyed)
        if raw:
            return response.content
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """The service's health: ``status``, ``version``, ``latest_offset``."""
        return dict(self.request("GET", "/health", retry=True))

    # -- workflows ---------------------------------------------------------------

    def submit(self, workflow: Workflow | dict[str, Any]) -> int:
        """Store a new version of ``workflow`` (or of its spec) unless unchanged; return its version."""
        spec = workflow if isinstance(workflow, dict) else workflow.to_spec()
        return int(self.request("POST", "/workflows", spec)["version"])

    def workflows(self) -> list[WorkflowInfo]:
        return [WorkflowInfo.from_dict(w) for w in self.request("GET", "/workflows", retry=True)["workflows"]]

    def workflow_info(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> WorkflowInfo:
        return WorkflowInfo.from_dict(self.request("GET", _workflow(namespace, name), retry=True))

    def workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE, version: int | None = None) -> Workflow:
        """The workflow as submitted (its latest version, or ``version``)."""
        from aiflow_nb.workflow.workflow import Workflow

        data = self.request("GET", _workflow(namespace, name), params={"version": version}, retry=True)
        return Workflow.from_spec(data["spec"])

    def delete_workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("DELETE", _workflow(namespace, name))

    def pause(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("POST", _workflow(namespace, name) + "/pause")

    def resume(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("POST", _workflow(namespace, name) + "/resume")

    def next_runs(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, datetime]:
        return self.workflow_info(name, namespace).next_runs

    def backfill(self, name: str, start: datetime, end: datetime, namespace: str = DEFAULT_NAMESPACE) -> int:
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return int(self.request("POST", _workflow(namespace, name) + "/backfill", body)["ticks"])

    def graph_svg(self, name: str, namespace: str = DEFAULT_NAMESPACE, execution: int | None = None) -> str:
        path = _workflow(namespace, name) + "/graph"
        return self._http.call("GET", path, params={"execution": execution}, retry=True).content.decode()

    # -- executions --------------------------------------------------------------

    def start_execution(
        self, name: str, namespace: str = DEFAULT_NAMESPACE, parameters: dict[str, Any] | None = None
    ) -> int:
        body = {"parameters": parameters} if parameters else None
        return int(self.request("POST", _workflow(namespace, name) + "/executions", body)["id"])

    def stop_execution(self, execution_id: int) -> WorkflowExecution:
        return WorkflowExecution.from_dict(self.request("POST", f"/executions/{int(execution_id)}/stop"))

    def execution(self, execution_id: int) -> WorkflowExecution:
        return WorkflowExecution.from_dict(self.request("GET", f"/executions/{int(execution_id)}", retry=True))

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: WorkflowStatus | str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        if isinstance(status, WorkflowStatus):
            status = status.value
        params = {"workflow": workflow, "namespace": namespace, "status": status, "limit": limit}
        data = self.request("GET", "/executions", params=params, retry=True)
        return [WorkflowExecution.from_dict(e) for e in data["executions"]]

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        data = self.request("GET", f"/executions/{int(execution_id)}/tasks", retry=True)
        return [TaskExecution.from_dict(t) for t in data["task_executions"]]

    def task_execution(self, task_execution_id: int) -> TaskExecution:
        return TaskExecution.from_dict(self.request("GET", f"/task-executions/{int(task_execution_id)}", retry=True))

    def why(self, task_execution_id: int) -> list[WhyLink]:
        data = self.request("GET", f"/task-executions/{int(task_execution_id)}/why", retry=True)
        return [WhyLink.from_dict(d) for d in data["links"]]

    def why_execution(self, execution_id: int) -> list[WhyLink]:
        data = self.request("GET", f"/executions/{int(execution_id)}/why", retry=True)
        return [WhyLink.from_dict(d) for d in data["links"]]

    def replay(
        self,
        workflow: Workflow | str,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        outcomes: str = "recorded",
        diff: bool = False,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        version: int | None = None,
    ) -> Replay:
        from aiflow_nb.scheduler.dryrun import Replay

        def shown(value: int | datetime | None) -> int | str | None:
            return value.isoformat() if isinstance(value, datetime) else value

        named: dict[str, Any] = (
            {"name": workflow, "namespace": namespace, "version": version}
            if isinstance(workflow, str)
            else {"spec": workflow.to_spec()}
        )
        body = {
            **named,
            "since": shown(since),
            "until": shown(until),
            "outcomes": outcomes,
            "diff": diff,
        }
        return Replay.from_dict(self.request("POST", "/replay", body))

    def start_task(self, execution_id: int, task: str, parameters: dict[str, Any] | None = None) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "start", parameters)

    def stop_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "stop")

    def restart_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "restart")

    def _task_action(
        self, execution_id: int, task: str, action: str, parameters: dict[str, Any] | None = None
    ) -> list[TaskExecution]:
        body = {"parameters": parameters} if parameters else None
        data = self.request("POST", f"/executions/{int(execution_id)}/tasks/{_q(task)}/{action}", body)
        return [TaskExecution.from_dict(t) for t in data["task_executions"]]

    def task_log(self, task_execution_id: int) -> str:
        path = f"/task-executions/{int(task_execution_id)}/log"
        return self._http.call("GET", path, retry=True).content.decode()

    def task_notebook(self, task_execution_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/task-executions/{int(task_execution_id)}/notebook", retry=True))

    # -- events ------------------------------------------------------------------

    def send_event(
        self,
        key: str,
        value: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        sender: str | None = None,
        context: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """See :meth:`AiflowApi.send_event`; the request carries a key of its own, so a retry is never doubled."""
        body = {"key": key, "value": value, "namespace": namespace, "sender": sender, "context": context}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        try:
            payload = json_body(body)
        except (TypeError, ValueError, RecursionError):
            encode(Event(key, value, namespace, sender, context))  # the engine's error, worded as it words it
            raise
        offset = self._http.call("POST", "/events", body=payload, retry=True, keyed=idempotency_key is None)
        return int(offset.json()["offset"])

    def send_events(self, events: Sequence[Event], idempotency_keys: Sequence[str | None] | None = None) -> list[int]:
        """See :meth:`AiflowApi.send_events`; a retried request is never doubled.

        >>> client.send_events([Event("row", 1), Event("row", 2)])  # doctest: +SKIP
        [41, 42]
        """
        keys: list[str | None] = list(idempotency_keys) if idempotency_keys is not None else [None] * len(events)
        if len(keys) != len(events):
            raise errors.InvalidEventError("idempotency_keys must have one entry per event")
        # Without keys, the request's key makes a retry safe; with some, the service takes no request
        # key, so each event without one gets its own.
        keyed = all(k is None for k in keys)
        if not keyed:
            keys = [k if k is not None else uuid.uuid4().hex for k in keys]
        if not events:
            return []  # as the engine does: nothing to append
        # As NDJSON, streamed: the service checks the first events while the rest are encoded.
        body = Lines(ndjson_chunks(events, keys))
        response = self._http.call(
            "POST", "/events", body=body, content_type="application/x-ndjson", retry=True, keyed=keyed
        )
        return [int(o) for o in response.json()["offsets"]]

    def events(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        """See :meth:`AiflowApi.events`."""
        params = {"since": since, "limit": limit, "key": key, "namespace": namespace, "sender": sender}
        return [Event.from_dict(e) for e in self.request("GET", "/events", params=params, retry=True)["events"]]

    def stream(self, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after ``since``, then each new one as it is committed, until ``stop`` is set.

        A set ``stop`` is noticed within about a second.  The stream asks the
        service again from the last offset it gave when the service restarts.
        """
        return stream.follow(self._http, since, stop)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _workflow(namespace: str, name: str) -> str:
    return f"/workflows/{_q(namespace)}/{_q(name)}"


if TYPE_CHECKING:
    from aiflow_nb.workflow.api import AiflowApi

    def _offers_the_api(client: Client) -> AiflowApi:
        return client  # mypy checks that the client offers the one API, as the engine does
