"""openapi.yaml is the REST contract: the routes the app serves and the paths it documents are the same."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
import tornado.web
import yaml

from aiflow_nb.server.app import PREFIX, ROUTES, make_app
from aiflow_nb.server.handlers.executions import TaskActionHandler
from tests.server.test_auth import METHODS, methods_of

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SAMPLE = {"namespace": "ns", "name": "wf", "execution_id": "12", "task_execution_id": "34", "task": "t", "action": "x"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    text = resources.files("aiflow_nb.server").joinpath("openapi.yaml").read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def served() -> dict[str, tuple[re.Pattern[str], type[tornado.web.RequestHandler]]]:
    """What the tornado application really routes: regex -> handler (read from the app, not from ROUTES)."""
    app = make_app(None)  # type: ignore[arg-type]  # the service is only handed to handlers
    rules = app.wildcard_router.rules
    found = {}
    for rule in rules:
        regex = rule.matcher.regex  # type: ignore[attr-defined]
        found[regex.pattern] = (regex, rule.target)
    return found


def documented(document: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {m.upper() for m in ops if m in HTTP_METHODS} for path, ops in document["paths"].items()}


def sample_path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


def test_every_served_route_is_documented_with_its_methods_and_vice_versa(document: dict[str, Any]) -> None:
    docs = documented(document)
    app_rules = served()
    assert len(app_rules) == len(ROUTES)
    from_app: dict[str, set[str]] = {}
    for _regex, handler, openapi_path in ROUTES:
        path = PREFIX + openapi_path
        # The documented path, with sample values, is routed by the app to this handler and no other.
        matching = [h for r, h in app_rules.values() if r.fullmatch(sample_path(path))]
        assert matching == [handler], (path, matching)
        from_app[path] = set(methods_of(handler, openapi_path))
    assert from_app == docs
    # No documented path is left without a handler that the app routes.
    for path in docs:
        assert any(r.fullmatch(sample_path(path)) for r, _ in app_rules.values()), path


def test_handlers_define_only_documented_methods() -> None:
    # A method defined on a handler but absent from METHODS would escape the comparison above.
    for _regex, handler, path in ROUTES:
        for name in ("patch", "options", "head"):
            assert getattr(handler, name) is getattr(tornado.web.RequestHandler, name), (handler, name)
        assert methods_of(handler, path), handler
    assert set(METHODS) <= HTTP_METHODS


def test_document_is_an_openapi_3_document(document: dict[str, Any]) -> None:
    assert str(document["openapi"]).startswith("3.")
    assert document["info"]["title"] and document["info"]["version"]
    assert isinstance(document["paths"], dict) and document["paths"]
    for path, item in document["paths"].items():
        assert path.startswith("/"), path
        assert isinstance(item, dict), path
        operations = {m: op for m, op in item.items() if m in HTTP_METHODS}
        assert operations, f"{path} has no operation"
        assert set(item) <= HTTP_METHODS | {"parameters", "summary", "description", "servers", "$ref"}, path
        declared_in_path = {p["name"] for p in resolve_all(document, item.get("parameters", [])) if p["in"] == "path"}
        for method, op in operations.items():
            responses = op.get("responses")
            assert isinstance(responses, dict) and responses, f"{method} {path} has no responses"
            for code, response in responses.items():
                assert re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", str(code)), (path, method, code)
                response = resolve(document, response)
                assert response.get("description"), (path, method, code)
            params = resolve_all(document, op.get("parameters", []))
            for param in params:
                assert param["in"] in ("query", "header", "path", "cookie") and param["name"], (path, param)
            in_path = declared_in_path | {p["name"] for p in params if p["in"] == "path"}
            # Every {template} of the path is a declared path parameter, and the other way round.
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), (path, method)
    # Every $ref in the document points at something that exists.
    for ref in refs(document):
        assert resolve(document, {"$ref": ref}), ref


def test_health_is_the_only_public_endpoint(document: dict[str, Any]) -> None:
    assert document["security"] == [{"token": []}]
    public = [
        (path, method)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS and op.get("security") == []
    ]
    assert public == [(PREFIX + "/health", "get")]


def test_task_actions_match_the_handler(document: dict[str, Any]) -> None:
    item = document["paths"][PREFIX + "/executions/{execution_id}/tasks/{task}/{action}"]
    action = next(p for p in resolve_all(document, item["parameters"]) if p["name"] == "action")
    assert action["schema"]["enum"] == list(TaskActionHandler.ACTIONS)


# -- $ref plumbing --------------------------------------------------------------------


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
    return node


def resolve_all(document: dict[str, Any], nodes: list[Any]) -> list[dict[str, Any]]:
    return [resolve(document, n) for n in nodes]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []
