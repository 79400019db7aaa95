"""``/aiflow/service``: is the service running (GET), start it (POST) for the panel's button."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from aiflow_nb.errors import AiflowError
from aiflow_nb.jupyter import errors, target
from aiflow_nb.server import control
from aiflow_nb.server.info import ServerInfo


def describe(server: ServerInfo | None) -> dict[str, Any]:
    """What the panel may know: never the token."""
    if server is None:
        return {"running": False, "home": str(target.home())}
    return {
        "running": True,
        "home": str(target.home()),
        "url": server.url,
        "pid": server.pid,
        "version": server.version,
    }


class ServiceHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(describe(target.running()))

    @web.authenticated
    async def post(self) -> None:
        try:
            # control.start polls for up to a minute; keep it off Jupyter's event loop.
            server, started = await asyncio.get_running_loop().run_in_executor(None, control.start, target.home())
        except AiflowError as exc:
            errors.write(self, 500, "service_start_failed", str(exc))
            return
        self.finish({**describe(server), "started": started})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        errors.write(self, status_code, "forbidden" if status_code == 403 else "http_error", self._reason)
