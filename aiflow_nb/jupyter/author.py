"""``/aiflow/author/...``: the "Add to workflow" dialog's two requests.

``GET /aiflow/author/notebook?path=P``: the kernel and parameters of the notebook at the contents path P.
``POST /aiflow/author/submit``: the dialog's draft; the spec it makes goes to the service's submit route.
``GET /aiflow/author/run?namespace=NS&name=WF[&task=T]``: the parameters the "Run with parameters" dialog
offers (the tasks' declared ones, with their defaults).
``POST /aiflow/author/run``: ``{namespace, name, values, [execution, task]}``: start an execution (or the
task in a running execution) with the values changed from their defaults as overrides.
``GET /aiflow/author/edit?namespace=NS&name=WF&task=T``: the task's rule as the dialog's fields.
``POST /aiflow/author/edit``: ``{namespace, name, task, action: "remove" | "rule", [when fields]}``: submit
the workflow without the task, or with the task's new rule, as a new version.
A mistake answers 400 ``{"error": {"code", "message", "field"}}`` and nothing is submitted or started.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from aiflow_nb.jupyter import draft, edit, errors, run, target, upstream
from aiflow_nb.server.info import ServerInfo

log = logging.getLogger(__name__)


class _AuthorHandler(APIHandler):
    async def notebook_text(self, path: str) -> str:
        """The notebook's text as stored (not parsed: a broken notebook is the dialog's to show)."""
        if not path.endswith(".ipynb"):
            raise draft.FieldError("notebook", f"{path!r} is not a notebook (.ipynb)")
        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="file", format="text")  # type: ignore[no-untyped-call]
            )
        except web.HTTPError as exc:
            raise draft.FieldError("notebook", f"cannot read {path!r}: {exc.log_message or exc.reason}") from None
        return str(model["content"])

    def os_path(self, path: str) -> str | None:
        root = getattr(self.contents_manager, "root_dir", None)
        return str(Path(root) / path) if isinstance(root, str) else None

    def service(self) -> Any:
        """The running service, or None after answering 503 (the caller returns)."""
        server = target.running()
        if server is None:
            errors.write(self, 503, "service_unavailable", errors.NOT_RUNNING)
        return server

    def refuse(self, exc: draft.FieldError) -> None:
        self.set_status(400)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(exc.body()))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        errors.write(self, status_code, "forbidden" if status_code == 403 else "http_error", self._reason)


class NotebookHandler(_AuthorHandler):
    @web.authenticated
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        try:
            self.finish(draft.inspect_text(await self.notebook_text(path)))
        except draft.FieldError as exc:
            self.refuse(exc)


class SubmitHandler(_AuthorHandler):
    @web.authenticated
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.refuse(draft.FieldError("form", "send the dialog's draft as a JSON object"))
            return
        server = self.service()
        if server is None:
            return
        try:
            text = await self.notebook_text(str(body.get("path") or ""))
            workflows = await self._workflows(server, body)
            spec = draft.build_spec(body, text, self.os_path(str(body["path"])), workflows)
        except draft.FieldError as exc:
            self.refuse(exc)
            return
        except httpx.TransportError as exc:
            errors.write(self, 503, "service_unavailable", f"{errors.NOT_RUNNING}: {exc}")
            return
        response = await upstream.client(self.settings).post(
            f"{server.url}/api/v1/workflows", headers=upstream.headers(server, "application/json"), json=spec
        )
        if response.status_code == 400:
            error = response.json().get("error", {})
            message = str(error.get("message", "the service refused the workflow"))
            self.refuse(draft.FieldError(draft.field_of_service_error(message), message, error.get("code", "")))
            return
        self.set_status(response.status_code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(response.content)
        log.info("submitted %s/%s from %s", spec["namespace"], spec["name"], body["path"])

    async def _workflows(self, server: ServerInfo, body: dict[str, Any]) -> list[draft.Existing]:
        """Every workflow's name; the spec of the one the draft extends."""
        client = upstream.client(self.settings)
        answer = await client.get(f"{server.url}/api/v1/workflows", headers=upstream.headers(server))
        answer.raise_for_status()
        found = [draft.Existing(w["namespace"], w["name"]) for w in answer.json()["workflows"]]
        namespace = str(body.get("namespace") or "default")
        name = str(body.get("workflow") or "")
        if body.get("existing") and any(w.name == name and w.namespace == namespace for w in found):
            shown = await client.get(
                f"{server.url}/api/v1/workflows/{quote(namespace, safe='')}/{quote(name, safe='')}",
                headers=upstream.headers(server),
            )
            shown.raise_for_status()
            found = [w for w in found if (w.namespace, w.name) != (namespace, name)]
            found.append(draft.Existing(namespace, name, shown.json()["spec"]))
        return found


class RunHandler(_AuthorHandler):
    """The "Run with parameters" dialog: its parameters, and its start."""

    async def _spec(self, server: ServerInfo, namespace: str, name: str) -> dict[str, Any] | None:
        shown = await upstream.client(self.settings).get(
            f"{server.url}/api/v1/workflows/{quote(namespace, safe='')}/{quote(name, safe='')}",
            headers=upstream.headers(server),
        )
        if shown.status_code != 200:
            self.set_status(shown.status_code)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(shown.content)
            return None
        spec: dict[str, Any] = shown.json()["spec"]
        return spec

    async def _requested_spec(self) -> dict[str, Any] | None:
        """The spec of the workflow the query names (None: an answer was already sent)."""
        server = self.service()
        if server is None:
            return None
        namespace = self.get_query_argument("namespace", "default")
        return await self._spec(server, namespace, self.get_query_argument("name", ""))

    @web.authenticated
    async def get(self) -> None:
        spec = await self._requested_spec()
        if spec is not None:
            self.finish({"parameters": run.run_parameters(spec, self.get_query_argument("task", None))})

    @web.authenticated
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            self.refuse(draft.FieldError("form", "send {namespace, name, values, [execution, task]} as JSON"))
            return
        server = self.service()
        if server is None:
            return
        namespace, name, task = str(body.get("namespace") or "default"), body["name"], body.get("task")
        spec = await self._spec(server, namespace, name)
        if spec is None:
            return
        try:
            given = run.overrides_of(body.get("values") or {}, run.run_parameters(spec, task))
        except draft.FieldError as exc:
            self.refuse(exc)
            return
        if task is None:
            path = f"/api/v1/workflows/{quote(namespace, safe='')}/{quote(name, safe='')}/executions"
        else:
            path = f"/api/v1/executions/{int(body.get('execution') or 0)}/tasks/{quote(str(task), safe='')}/start"
        response = await upstream.client(self.settings).post(
            f"{server.url}{path}",
            headers=upstream.headers(server, "application/json"),
            json={"parameters": given} if given else None,
        )
        if 400 <= response.status_code < 500:
            error = response.json().get("error", {})
            message = str(error.get("message", "the service refused the start"))
            self.refuse(draft.FieldError(run.field_of(message), message, error.get("code", "")))
            return
        self.set_status(response.status_code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(response.content)
        log.info("started %s/%s%s with %d override(s)", namespace, name, f" task {task}" if task else "", len(given))


class EditHandler(RunHandler):
    """The workflow view's edits: remove a task, change a task's rule (each a new version)."""

    @web.authenticated
    async def get(self) -> None:
        spec = await self._requested_spec()
        if spec is None:
            return
        namespace = self.get_query_argument("namespace", "default")
        task = self.get_query_argument("task", "")
        tasks = [str(t.get("name")) for t in spec.get("tasks") or []]
        found = next((t for t in spec.get("tasks") or [] if t.get("name") == task), None)
        if found is None:
            self.refuse(draft.FieldError("task", f"workflow {namespace}/{spec.get('name')} has no task {task!r}"))
            return
        self.finish({"task": task, "tasks": [t for t in tasks if t != task], **edit.when_of(found)})

    @web.authenticated
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("action") not in ("remove", "rule"):
            self.refuse(draft.FieldError("form", 'send {namespace, name, task, action: "remove" or "rule", ...}'))
            return
        server = self.service()
        if server is None:
            return
        namespace, name = str(body.get("namespace") or "default"), str(body.get("name") or "")
        spec = await self._spec(server, namespace, name)
        if spec is None:
            return
        try:
            if body["action"] == "remove":
                changed = edit.remove_task(spec, body.get("task"))
            else:
                changed = edit.change_rule(spec, body.get("task"), body)
        except draft.FieldError as exc:
            self.refuse(exc)
            return
        response = await upstream.client(self.settings).post(
            f"{server.url}/api/v1/workflows", headers=upstream.headers(server, "application/json"), json=changed
        )
        if response.status_code == 400:
            error = response.json().get("error", {})
            message = str(error.get("message", "the service refused the workflow"))
            self.refuse(draft.FieldError("form", message, error.get("code", "")))
            return
        self.set_status(response.status_code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(response.content)
        log.info("%s of task %s: %s/%s submitted", body["action"], body.get("task"), namespace, name)
