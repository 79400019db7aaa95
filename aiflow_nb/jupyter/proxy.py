"""HTTP proxy: ``/aiflow/api/v1/<path>`` -> ``<service>/api/v1/<path>`` with the service's token."""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import httpclient, web

from aiflow_nb.jupyter import errors, target

#: Response headers worth passing on (hop-by-hop and length headers are tornado's business).
_PASSED = ("Content-Type", "Cache-Control")
_TIMEOUT = 60.0


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
        request = httpclient.HTTPRequest(
            url,
            method=self.request.method or "GET",
            headers={
                "Authorization": f"token {server.token}",
                "Content-Type": self.request.headers.get("Content-Type", "application/json"),
            },
            body=self.request.body if has_body else None,
            allow_nonstandard_methods=True,
            request_timeout=_TIMEOUT,
            follow_redirects=False,
        )
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:  # refused, or closed mid-answer (it is stopping)
            errors.write(self, 503, "service_unavailable", f"{errors.NOT_RUNNING}: {exc}")
            return
        if response.code == 599:  # tornado's code for "no HTTP response at all"
            errors.write(self, 503, "service_unavailable", f"{errors.NOT_RUNNING}: {response.error}")
            return
        self.set_status(response.code)
        for name in _PASSED:
            value = response.headers.get(name)
            if value is not None:
                self.set_header(name, value)
        self.finish(response.body or b"")

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
