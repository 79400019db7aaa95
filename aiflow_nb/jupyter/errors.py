"""Errors of the proxy, in the service's JSON shape so the panel reads one format."""

from __future__ import annotations

import json
from typing import Any

#: What the panel tells the user when no service answers.
NOT_RUNNING = "the aiflow-nb service is not running (start it from the panel or with 'aiflow-nb server start')"


def body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def write(handler: Any, status: int, code: str, message: str) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.finish(body(code, message))
