"""Fuzzing the REST API from its OpenAPI file (schemathesis) on a live service.

Every operation gets requests that fit the schema and requests that do not
(negative mode: wrong types, missing fields, odd paths), with the token.
None may give a 5xx or hang; every 4xx carries the JSON error body; the
service still answers afterwards and its stored state is still readable.
Hypothesis is derandomized, so a failure replays.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from aiflow_nb import BashTask, Workflow
from tests.conftest import RunningService
from tests.server import Response, call, stored_state

#: The WebSocket route answers plain HTTP with 400 (it needs an upgrade): fuzzed for 5xx only.
WEBSOCKET = "/api/v1/stream"
EXAMPLES = 25


def check(case: Any, url: str, token: str) -> None:
    response = case.call(base_url=url, headers={"Authorization": f"token {token}"}, timeout=30)
    what = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]}"
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if 400 <= response.status_code < 500 and case.path != WEBSOCKET:
        headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
        raw = Response(response.status_code, headers, response.content)
        raw.error()  # the {"error": {code, message}} body, no traceback


@pytest.mark.timeout(600)
def test_no_request_the_schema_allows_or_not_breaks_the_service(service: RunningService, tmp_path: Path) -> None:
    client = service.client()
    with Workflow("fuzz") as wf:
        BashTask("t", command="true")
    client.submit(wf)
    ex = client.start_execution("fuzz")
    schema = schemathesis.openapi.from_path(str(resources.files("aiflow_nb.server").joinpath("openapi.yaml")))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    url, token = service.info.url, service.info.token
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                check(case, url, token)

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing in it to get wrong
    # Still serving, and what is stored still reads.
    assert call(url, "GET", "/api/v1/health").status == 200
    stored_state(client)
    assert client.execution(ex).id == ex
