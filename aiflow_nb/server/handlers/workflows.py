"""/api/v1/workflows: submit, list, show, delete, pause, resume, graph, start, backfill."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiflow_nb.server.handlers.base import ApiError, BaseHandler
from aiflow_nb.server.handlers.records import as_dict, listing
from aiflow_nb.workflow import Workflow


class WorkflowsHandler(BaseHandler):
    async def post(self) -> None:
        workflow = Workflow.from_spec(self.body())
        version = await self.service.db(self.engine.submit, workflow)
        self.send({"namespace": workflow.namespace, "name": workflow.name, "version": version})

    async def get(self) -> None:
        workflows = await self.service.db(self.engine.workflows)
        self.send(listing("workflows", workflows))


class WorkflowHandler(BaseHandler):
    async def get(self, namespace: str, name: str) -> None:
        """The workflow, with the spec of its latest version (or of ``?version=N``)."""
        version = self.int_argument("version")

        def show() -> dict[str, Any]:
            data: dict[str, Any] = as_dict(self.engine.workflow_info(name, namespace))
            data["spec"] = self.engine.workflow(name, namespace, version).to_spec()
            return data

        self.send(await self.service.db(show))

    async def delete(self, namespace: str, name: str) -> None:
        await self.service.db(self.engine.delete_workflow, name, namespace)
        self.send({"deleted": True, "namespace": namespace, "name": name})


class PauseHandler(BaseHandler):
    paused = True

    async def post(self, namespace: str, name: str) -> None:
        action = self.engine.pause if self.paused else self.engine.resume
        await self.service.db(action, name, namespace)
        self.send(as_dict(await self.service.db(self.engine.workflow_info, name, namespace)))


class ResumeHandler(PauseHandler):
    paused = False


class GraphHandler(BaseHandler):
    async def get(self, namespace: str, name: str) -> None:
        execution = self.int_argument("execution")
        svg = await self.service.db(self.engine.graph_svg, name, namespace, execution)
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(svg)


class StartExecutionHandler(BaseHandler):
    async def post(self, namespace: str, name: str) -> None:
        execution_id = await self.service.db(self.engine.start_execution, name, namespace, self.parameters())
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
