"""/api/v1/executions and /api/v1/task-executions."""

from __future__ import annotations

from typing import Any

from aiflow_nb.server.handlers.base import ApiError, BaseHandler, encode_json
from aiflow_nb.server.handlers.records import as_dict, listing
from aiflow_nb.workflow import WorkflowStatus


class ExecutionsHandler(BaseHandler):
    async def get(self) -> None:
        status = self.get_query_argument("status", None)
        if status is not None and status not in WorkflowStatus.__members__:
            raise ApiError(400, "invalid_argument", f"status must be one of {', '.join(WorkflowStatus.__members__)}")
        limit = self.int_argument("limit")
        if limit is not None and limit < 1:
            raise ApiError(400, "invalid_argument", "limit must be at least 1")
        executions = await self.service.db(
            self.engine.executions,
            workflow=self.get_query_argument("workflow", None),
            namespace=self.get_query_argument("namespace", None),
            status=status,
            limit=limit,
        )
        self.send(listing("executions", executions))


class ExecutionHandler(BaseHandler):
    async def get(self, execution_id: str) -> None:
        execution = await self.service.db(self.engine.execution, int(execution_id))
        self.send(as_dict(execution))


class StopExecutionHandler(BaseHandler):
    async def post(self, execution_id: str) -> None:
        self.send(as_dict(await self.service.db(self.engine.stop_execution, int(execution_id))))


class TaskExecutionsHandler(BaseHandler):
    async def get(self, execution_id: str) -> None:
        def runs() -> list[Any]:
            self.engine.execution(int(execution_id))  # 404 for an unknown execution
            return list(self.engine.task_executions(int(execution_id)))

        self.send(listing("task_executions", await self.service.db(runs)))


class TaskActionHandler(BaseHandler):
    ACTIONS = ("start", "stop", "restart")

    async def post(self, execution_id: str, task: str, action: str) -> None:
        if action not in self.ACTIONS:
            raise ApiError(404, "not_found", f"unknown task action {action!r}; use start, stop or restart")
        method = getattr(self.engine, f"{action}_task")
        parameters = self.parameters()
        if parameters is not None and action != "start":
            raise ApiError(400, "invalid_parameter", "parameters are given to a task's start only")
        args = (parameters,) if action == "start" else ()
        runs = await self.service.db(method, int(execution_id), task, *args)
        self.send(listing("task_executions", runs))


class TaskExecutionHandler(BaseHandler):
    async def get(self, te_id: str) -> None:
        self.send(as_dict(await self.service.db(self.engine.task_execution, int(te_id))))


class TaskLogHandler(BaseHandler):
    async def get(self, te_id: str) -> None:
        text = await self.service.db(self.engine.task_log, int(te_id))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class TaskNotebookHandler(BaseHandler):
    async def get(self, te_id: str) -> None:
        notebook = await self.service.db(self.engine.task_notebook, int(te_id))
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.finish(encode_json(notebook))
