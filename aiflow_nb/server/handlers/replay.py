"""/api/v1/replay: a given workflow through the rules over a window of the log, in memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiflow_nb.server.handlers.base import ApiError, BaseHandler
from aiflow_nb.workflow import Workflow


def window_bound(name: str, raw: Any) -> int | datetime | None:
    """An offset (an integer) or a time (ISO 8601 with a zone), or 400."""
    if raw is None or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when
    raise ApiError(
        400, "invalid_spec", f"replay: {name} must be an offset or an ISO 8601 time with a zone, got {raw!r}"
    )


class ReplayHandler(BaseHandler):
    async def post(self) -> None:
        body = self.body()
        if not isinstance(body, dict) or "spec" not in body:
            raise ApiError(400, "invalid_spec", 'send {"spec": workflow spec, "since", "until", "outcomes", "diff"}')
        workflow = Workflow.from_spec(body["spec"])
        since, until = window_bound("since", body.get("since")), window_bound("until", body.get("until"))
        outcomes = body.get("outcomes", "recorded")
        if not isinstance(outcomes, str):
            raise ApiError(400, "invalid_spec", "replay: outcomes must be success, failed or recorded")
        result = await self.service.db(
            self.engine.replay, workflow, since, until, outcomes, bool(body.get("diff", False))
        )
        self.send(result.to_dict())
