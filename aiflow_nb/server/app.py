"""The routes of REST API v1: a tornado application.

The contract is ``openapi.yaml`` beside this file; a test checks that the
routes here and the paths there are the same.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from aiflow_nb.server import redact
from aiflow_nb.server.handlers import base, events, executions, replay, stream, verify, why, workflows
from aiflow_nb.server.service import Service

PREFIX = "/api/v1"
_NAME = r"([A-Za-z0-9_][A-Za-z0-9_.\-]*)"
_ID = r"([0-9]+)"

#: (path regex, handler, OpenAPI path) -- one line per endpoint.
ROUTES: list[tuple[str, type[tornado.web.RequestHandler], str]] = [
    ("/health", base.HealthHandler, "/health"),
    ("/events", events.EventsHandler, "/events"),
    ("/stream", stream.StreamHandler, "/stream"),
    ("/workflows", workflows.WorkflowsHandler, "/workflows"),
    (f"/workflows/{_NAME}/{_NAME}", workflows.WorkflowHandler, "/workflows/{namespace}/{name}"),
    (f"/workflows/{_NAME}/{_NAME}/pause", workflows.PauseHandler, "/workflows/{namespace}/{name}/pause"),
    (f"/workflows/{_NAME}/{_NAME}/resume", workflows.ResumeHandler, "/workflows/{namespace}/{name}/resume"),
    (f"/workflows/{_NAME}/{_NAME}/graph", workflows.GraphHandler, "/workflows/{namespace}/{name}/graph"),
    (f"/workflows/{_NAME}/{_NAME}/backfill", workflows.BackfillHandler, "/workflows/{namespace}/{name}/backfill"),
    (
        f"/workflows/{_NAME}/{_NAME}/executions",
        workflows.StartExecutionHandler,
        "/workflows/{namespace}/{name}/executions",
    ),
    ("/executions", executions.ExecutionsHandler, "/executions"),
    (f"/executions/{_ID}", executions.ExecutionHandler, "/executions/{execution_id}"),
    (f"/executions/{_ID}/stop", executions.StopExecutionHandler, "/executions/{execution_id}/stop"),
    (f"/executions/{_ID}/tasks", executions.TaskExecutionsHandler, "/executions/{execution_id}/tasks"),
    (
        f"/executions/{_ID}/tasks/{_NAME}/([a-z]+)",
        executions.TaskActionHandler,
        "/executions/{execution_id}/tasks/{task}/{action}",
    ),
    (f"/task-executions/{_ID}", executions.TaskExecutionHandler, "/task-executions/{task_execution_id}"),
    (f"/task-executions/{_ID}/log", executions.TaskLogHandler, "/task-executions/{task_execution_id}/log"),
    (
        f"/task-executions/{_ID}/notebook",
        executions.TaskNotebookHandler,
        "/task-executions/{task_execution_id}/notebook",
    ),
    (f"/task-executions/{_ID}/why", why.TaskWhyHandler, "/task-executions/{task_execution_id}/why"),
    (f"/executions/{_ID}/why", why.ExecutionWhyHandler, "/executions/{execution_id}/why"),
    ("/verify", verify.VerifyHandler, "/verify"),
    ("/replay", replay.ReplayHandler, "/replay"),
]


def make_app(service: Service, **settings: Any) -> tornado.web.Application:
    handlers = [(PREFIX + path, handler, {"service": service}) for path, handler, _ in ROUTES]
    return tornado.web.Application(
        handlers,  # type: ignore[arg-type]
        default_handler_class=base.NotFoundHandler,
        default_handler_args={"service": service},
        websocket_ping_interval=30,
        **{**redact.settings(), **settings},
    )
