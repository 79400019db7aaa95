"""/api/v1/task-executions/{id}/why and /api/v1/executions/{id}/why: the chain of causes."""

from __future__ import annotations

from aiflow_nb.scheduler import why
from aiflow_nb.server.handlers.base import BaseHandler
from aiflow_nb.workflow.records import WhyLink


def answer(links: list[WhyLink]) -> dict[str, object]:
    """The chain, and its causes in a few words (``short``, what the panel's "why" line shows)."""
    return {"links": [link.to_dict() for link in links], "short": why.short(links)}


class TaskWhyHandler(BaseHandler):
    async def get(self, te_id: str) -> None:
        links = await self.service.db(self.engine.why, int(te_id))
        self.send(answer(links))


class ExecutionWhyHandler(BaseHandler):
    async def get(self, execution_id: str) -> None:
        links = await self.service.db(self.engine.why_execution, int(execution_id))
        self.send(answer(links))
