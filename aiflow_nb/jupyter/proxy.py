"""HTTP proxy: ``/aiflow/api/v1/<path>`` -> ``<service>/api/v1/<path>`` with the service's token."""

from __future__ import annotations

from typing import Any

import httpx
from jupyter_server.base.handlers import APIHandler
from tornado import web

from aiflow_nb.jupyter import errors, target, upstream

#: Response headers worth passing on (hop-by-hop and length headers are tornado's business).
_PASSED = ("Content-Type", "Cache-Control")


class ProxyHandler(APIHandler):
    """Forwards GET, POST and DELETE; Jupyter's auth (token or cookie + XSRF) guards it."""

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        if not target.api_path_ok(path):
            errors.write(self, 404, "not_found", f"not an aiflow-nb API path: {self.request.path}")
            return
        server = target.running()
        if server is None:
            errors.write(self, 503, "service_unavailable", errors.NOT_RUNNING)
            return
        url = f"{server.url}/api/v1/{path}"
        if self.request.query:
            url += "?" + self.request.query
        has_body = self.request.method in ("POST", "PUT", "PATCH")
        content_type = self.request.headers.get("Content-Type", "application/json")
        try:
            response = await upstream.client(self.settings).request(
                self.request.method or "GET",
                url,
                headers=upstream.headers(server, content_type),
                content=self.request.body if has_body else None,
            )
        except httpx.TransportError as exc:  # refused, or closed mid-answer (it is stopping)
            errors.write(self, 503, "service_unavailable", f"{errors.NOT_RUNNING}: {exc}")
            return
        self.set_status(response.status_code)
        for name in _PASSED:
            value = response.headers.get(name)
            if value is not None:
                self.set_header(name, value)
        self.finish(response.content)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Jupyter's own refusals (403 without its token, XSRF) in the service's error shape.
        errors.write(self, status_code, "forbidden" if status_code == 403 else "http_error", self._reason)


class OutsideHandler(APIHandler):
    """Any other path under /aiflow: the proxy only forwards the service's API (/api/v1/...)."""

    @web.authenticated
    def get(self, path: str) -> None:
        self._refuse()

    @web.authenticated
    def post(self, path: str) -> None:
        self._refuse()

    @web.authenticated
    def delete(self, path: str) -> None:
        self._refuse()

    def _refuse(self) -> None:
        errors.write(
            self, 404, "not_found", f"not an aiflow-nb API path: {self.request.path} (only /aiflow/api/v1/...)"
        )
