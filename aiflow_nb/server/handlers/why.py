"""/api/v1/task-executions/{id}/why and /api/v1/executions/{id}/why: the chain of causes."""

from __future__ import annotations

from aiflow_nb.server.handlers.base import BaseHandler


class TaskWhyHandler(BaseHandler):
    async def get(self, te_id: str) -> None:
        links = await self.service.db(self.engine.why, int(te_id))
        self.send({"links": [link.to_dict() for link in links]})


class ExecutionWhyHandler(BaseHandler):
    async def get(self, execution_id: str) -> None:
        links = await self.service.db(self.engine.why_execution, int(execution_id))
        self.send({"links": [link.to_dict() for link in links]})
