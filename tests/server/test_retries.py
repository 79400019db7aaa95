"""Retries seen through the service: RETRYING is a visible status, then SUCCESS."""

from __future__ import annotations

from pathlib import Path

from aiflow_nb import BashTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.events import keys
from tests.conftest import RunningService
from tests.server import wait


def test_a_flaky_task_is_retried_then_succeeds(service: RunningService, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    with Workflow("flaky") as wf:
        BashTask(
            "flaky",
            command=f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; "
            '[ "$n" -ge 2 ] || { echo "try $n fails" >&2; exit 1; }',
            max_retries=3,
            retry_delay=0.5,
        )
    client = service.client()
    client.submit(wf)
    ex = client.start_execution("flaky")
    wait(lambda: client.execution(ex).status.finished, 60, "the execution to end")

    [te] = client.task_executions(ex)
    assert (te.status, te.attempt) == (TaskStatus.SUCCESS, 2)
    assert client.execution(ex).status is WorkflowStatus.SUCCESS
    history = [(e.value["status"], e.value["attempt"]) for e in client.events(key=keys.TASK_STATUS)]
    assert history == [("QUEUED", 1), ("RUNNING", 1), ("RETRYING", 1), ("QUEUED", 2), ("RUNNING", 2), ("SUCCESS", 2)]
    assert counter.read_text().strip() == "2"  # ran twice, not more
