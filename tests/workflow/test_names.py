"""Names are matched whole: one ending in a newline is refused like any other bad name (issue 26, item 9)."""

from __future__ import annotations

import json

import pytest

from aiflow_nb import BashTask, Workflow
from aiflow_nb.errors import SpecError
from aiflow_nb.server.app import PREFIX
from tests.conftest import RunningService
from tests.server import call

ENDINGS = ["\n", "x\n", "\r", "\n\n"]


@pytest.mark.parametrize("tail", ENDINGS)
def test_a_name_with_a_line_break_is_refused(tail: str) -> None:
    bad = "nl" + tail
    with pytest.raises(SpecError, match=r"workflow name .* is not valid"):
        Workflow(bad)
    with pytest.raises(SpecError, match=r"namespace name .* is not valid"):
        Workflow("ok", namespace=bad)
    with Workflow("ok") as wf:
        with pytest.raises(SpecError, match=r"task name .* is not valid"):
            BashTask(bad, command="true")
        BashTask("t", command="true")
    spec = wf.to_spec()
    spec["name"] = bad
    with pytest.raises(SpecError, match=r"workflow name .* is not valid"):
        Workflow.from_spec(json.dumps(spec))


def test_the_service_refuses_a_workflow_named_with_a_newline(service: RunningService) -> None:
    with Workflow("nl") as wf:
        BashTask("t", command="true")
    spec = wf.to_spec()
    spec["name"] = "nl\n"
    token = service.info.token
    sent = call(service.info.url, "POST", PREFIX + "/workflows", spec, token=token)
    assert sent.status == 400, sent
    assert "workflow name 'nl\\n' is not valid" in json.loads(sent.body)["error"]["message"]
    listed = json.loads(call(service.info.url, "GET", PREFIX + "/workflows", token=token).body)
    assert [w["name"] for w in listed["workflows"]] == []
