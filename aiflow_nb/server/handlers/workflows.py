"""/api/v1/workflows: submit, list, show, delete, pause, resume, graph, start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiflow_nb.errors import NotFoundError
from aiflow_nb.server.handlers.base import ApiError, BaseHandler
from aiflow_nb.workflow import Workflow
from aiflow_nb.workflow.graph import workflow_svg
from aiflow_nb.workflow.records import latest_statuses


def workflow_dict(
    engine: Any, namespace: str, name: str, spec: bool = False, latest: dict[tuple[str, str], Any] | None = None
) -> dict[str, Any]:
    """What the API tells of a workflow; ``latest``: every workflow's newest execution, when listing them all."""
    info = engine.workflow_info(name, namespace)
    data: dict[str, Any] = info.to_dict()
    if latest is None:
        newest = engine.executions(workflow=name, namespace=namespace, limit=1)
        latest = {(namespace, name): newest[-1]} if newest else {}
    found = latest.get((namespace, name))
    data["latest_execution"] = found.to_dict() if found is not None else None
    data["next_runs"] = {
        task or "(workflow)": due.isoformat() for task, due in engine.next_runs(name, namespace).items()
    }
    if spec:
        data["spec"] = engine.workflow(name, namespace).to_spec()
    return data


class WorkflowsHandler(BaseHandler):
    async def post(self) -> None:
        workflow = Workflow.from_spec(self.body())
        version = await self.service.db(self.engine.submit, workflow)
        self.send({"namespace": workflow.namespace, "name": workflow.name, "version": version})

    async def get(self) -> None:
        def listing() -> list[dict[str, Any]]:
            latest = self.engine.latest_executions()  # one query, not one per workflow
            return [workflow_dict(self.engine, w.namespace, w.name, latest=latest) for w in self.engine.workflows()]

        self.send({"workflows": await self.service.db(listing)})


class WorkflowHandler(BaseHandler):
    async def get(self, namespace: str, name: str) -> None:
        self.send(await self.service.db(workflow_dict, self.engine, namespace, name, True))

    async def delete(self, namespace: str, name: str) -> None:
        await self.service.db(self.engine.delete, name, namespace)
        self.send({"deleted": True, "namespace": namespace, "name": name})


class PauseHandler(BaseHandler):
    paused = True

    async def post(self, namespace: str, name: str) -> None:
        action = self.engine.pause if self.paused else self.engine.resume
        await self.service.db(action, name, namespace)
        self.send(await self.service.db(workflow_dict, self.engine, namespace, name))


class ResumeHandler(PauseHandler):
    paused = False


class GraphHandler(BaseHandler):
    async def get(self, namespace: str, name: str) -> None:
        execution = self.int_argument("execution")

        def draw() -> str:
            engine = self.engine
            if execution is not None:
                ex = engine.execution(execution)
                if (ex.namespace, ex.workflow) != (namespace, name):
                    raise NotFoundError(f"execution {execution} is not of workflow {namespace}/{name}")
                return workflow_svg(
                    engine.workflow(name, namespace, ex.version), latest_statuses(engine.task_executions(ex.id))
                )
            workflow = engine.workflow(name, namespace)
            latest = engine.executions(workflow=name, namespace=namespace, limit=1)
            runs = engine.task_executions(latest[-1].id) if latest else []
            return workflow_svg(workflow, latest_statuses(runs))

        svg = await self.service.db(draw)
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(svg)


class StartExecutionHandler(BaseHandler):
    async def post(self, namespace: str, name: str) -> None:
        execution_id = await self.service.db(self.engine.start_execution, name, namespace)
        self.send({"id": execution_id})


class BackfillHandler(BaseHandler):
    async def post(self, namespace: str, name: str) -> None:
        body = self.body()
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_schedule", 'send {"start": ISO time, "end": ISO time}')
        times = []
        for field in ("start", "end"):
            raw = body.get(field)
            try:
                times.append(datetime.fromisoformat(raw))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ApiError(
                    400, "invalid_schedule", f"backfill: {field} must be an ISO 8601 time with a zone, got {raw!r}"
                ) from None
        count = await self.service.db(self.engine.backfill, name, times[0], times[1], namespace)
        self.send({"ticks": count})
