"""/api/v1/verify: the stored state against the state the log implies."""

from __future__ import annotations

from aiflow_nb.server.handlers.base import BaseHandler


class VerifyHandler(BaseHandler):
    async def get(self) -> None:
        report = await self.service.db(self.engine.verify)
        self.send(report.to_dict())
