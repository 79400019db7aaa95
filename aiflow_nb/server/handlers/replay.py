"""/api/v1/replay: a given workflow through the rules over a window of the log, in memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiflow_nb.events.event import DEFAULT_NAMESPACE
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


def submitted(body: dict[str, Any]) -> str:
    """The name of the submitted workflow to replay (its namespace and version are checked here too), or 400."""
    name, namespace, version = body["name"], body.get("namespace"), body.get("version")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "invalid_spec", f"replay: name must be a workflow's name, got {name!r}")
    if namespace is not None and not isinstance(namespace, str):
        raise ApiError(400, "invalid_spec", f"replay: namespace must be text, got {namespace!r}")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise ApiError(400, "invalid_spec", f"replay: version must be a number from 1, got {version!r}")
    return name


class ReplayHandler(BaseHandler):
    async def post(self) -> None:
        body = self.body()
        if not isinstance(body, dict) or ("spec" in body) == ("name" in body):
            raise ApiError(
                400,
                "invalid_spec",
                'send {"spec": workflow spec} or {"name", "namespace", "version"} of a submitted one, '
                'and "since", "until", "outcomes", "diff"',
            )
        workflow: Workflow | str
        which: dict[str, Any]
        if "spec" in body:
            workflow, which = Workflow.from_spec(body["spec"]), {}
        else:
            workflow = submitted(body)
            which = {"namespace": body.get("namespace") or DEFAULT_NAMESPACE, "version": body.get("version")}
        since, until = window_bound("since", body.get("since")), window_bound("until", body.get("until"))
        outcomes = body.get("outcomes", "recorded")
        if not isinstance(outcomes, str):
            raise ApiError(400, "invalid_spec", "replay: outcomes must be success, failed or recorded")
        result = await self.service.db(
            self.engine.replay, workflow, since, until, outcomes, bool(body.get("diff", False)), **which
        )
        self.send(result.to_dict())
