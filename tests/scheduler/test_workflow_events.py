"""Changes to workflows are events too, so views of the workflow list follow them live."""

from __future__ import annotations

from aiflow_nb import BashTask, Engine, Workflow
from aiflow_nb.events import keys

CHANGES = (keys.WORKFLOW_SUBMITTED, keys.WORKFLOW_PAUSED, keys.WORKFLOW_RESUMED, keys.WORKFLOW_DELETED)


def changes(engine: Engine) -> list[tuple[str, str, int]]:
    return [
        (e.key.rsplit(".", 1)[1], e.value["workflow"], e.value["version"]) for e in engine.events() if e.key in CHANGES
    ]


def hello(command: str = "true") -> Workflow:
    with Workflow("hello", namespace="team") as wf:
        BashTask("t", command=command)
    return wf


def test_submit_pause_resume_delete_each_send_one_event(engine: Engine) -> None:
    engine.submit(hello())
    engine.submit(hello())  # unchanged: no new version, no event
    engine.submit(hello("echo v2"))
    engine.pause("hello", "team")
    engine.pause("hello", "team")  # already paused: nothing changes
    engine.resume("hello", "team")
    engine.delete_workflow("hello", "team")
    engine.submit(hello("echo v2"))  # back again, as version 2

    assert changes(engine) == [
        ("submitted", "hello", 1),
        ("submitted", "hello", 2),
        ("paused", "hello", 2),
        ("resumed", "hello", 2),
        ("deleted", "hello", 2),
        ("submitted", "hello", 2),
    ]
    submitted = next(e for e in engine.events() if e.key == keys.WORKFLOW_SUBMITTED)
    assert (submitted.namespace, submitted.sender) == ("team", "hello")
