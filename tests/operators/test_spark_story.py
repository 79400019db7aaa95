"""notebooks/spark_watermark.ipynb: a Spark Structured Streaming job's watermark sends ``hour_complete``
once per hour through a StreamingQueryListener; each hour is trained once, also across a service SIGKILL."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import nbformat
import pytest

from aiflow_nb import TaskStatus
from aiflow_nb.client import Client
from aiflow_nb.executors import process
from aiflow_nb.executors.runner import HANDLE_FILE
from aiflow_nb.workflow.cells import workflows_from_notebook
from tests.conftest import RunningService
from tests.notebooks.test_examples import NOTEBOOKS, run_example
from tests.operators.test_operator_runs import live_in_group
from tests.server import wait

pytest.importorskip("pyspark", reason="the spark extra: pip install 'aiflow-nb[spark]'")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 (make setup installs it)", allow_module_level=True)

pytestmark = pytest.mark.timeout(600)

NAME = "spark_watermark.ipynb"
HOURS = ["2026-11-27T00:00:00+00:00", "2026-11-27T01:00:00+00:00", "2026-11-27T02:00:00+00:00"]


def trained_hours(client: Client) -> list[str]:
    runs = [e for e in client.executions(workflow="spark_training") if e.status.value == "SUCCESS"]
    return sorted(e.event["value"]["start"] for e in runs if e.event is not None)


def copy_with_app(folder: Path) -> Path:
    """The notebook in ``folder`` with the Spark application its %%writefile cell writes."""
    folder.mkdir()
    path = folder / NAME
    shutil.copy(NOTEBOOKS / NAME, path)
    nb = nbformat.read(path, as_version=4)
    [cell] = [c for c in nb.cells if c.source.startswith("%%writefile")]
    first, _, body = cell.source.partition("\n")
    (folder / first.split()[1]).write_text(body + "\n")
    return path


def test_every_hour_is_trained_once_across_a_service_sigkill_mid_stream(home: Path, tmp_path: Path) -> None:
    path = copy_with_app(tmp_path / "story")
    service = RunningService(home).start()
    restarted: RunningService | None = None
    try:
        client = service.client()
        for wf in workflows_from_notebook(path):
            client.submit(wf)
        ex = client.start_execution("spark_clicks")
        wait(lambda: len(trained_hours(client)) >= 1, 300, "the first hour to be trained")

        service.kill(signal.SIGKILL)  # mid-stream: the Spark job and its listener go on
        restarted = RunningService(home).start()
        client = restarted.client()
        wait(lambda: len(trained_hours(client)) == 3, 300, "every hour to be trained after the restart")
        [stream] = client.task_executions(ex)
        assert stream.status is TaskStatus.RUNNING  # the same run, watched again
        client.stop_task(ex, "stream")
        wait(lambda: client.task_execution(stream.id).status.finished, 120, "the stream to stop")
        assert client.task_execution(stream.id).status is TaskStatus.STOPPED

        assert trained_hours(client) == HOURS  # each once
        assert len(client.executions(workflow="spark_training")) == 3
        assert sorted(e.value["start"] for e in client.events(key="hour_complete")) == HOURS
        models = [json.loads(p.read_text()) for p in sorted((path.parent / "clicks_data" / "models").glob("*.json"))]
        assert [m["rows"] for m in models] == [120, 120, 120]  # a click every 30 s of event time
    finally:
        service.stop()
        if restarted is not None:
            restarted.stop()


def test_the_notebook_runs_top_to_bottom(
    service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_example(NAME, tmp_path / "examples", service, monkeypatch)
    client = service.client()
    assert trained_hours(client) == HOURS
    assert "20261127T02 {" in ran.text()
    wait(lambda: client.executions(workflow="spark_clicks")[0].status.finished, 120, "the stream to stop")


def stream_runs(client: Client, execution_id: int) -> list[tuple[TaskStatus, int]]:
    return [(t.status, t.seq) for t in client.task_executions(execution_id)]


def spark_job(home: Path, task_execution_id: int) -> tuple[int, str | None]:
    """The stream's Spark job: the pid and start time of its keeper (the leader of the job's process group)."""
    handle = json.loads((home / "runs" / str(task_execution_id) / "1" / HANDLE_FILE).read_text())
    return int(handle["pid"]), handle["started"]


def test_model_drift_restarts_the_stream_and_every_hour_is_trained_once(
    service: RunningService, tmp_path: Path
) -> None:
    path = copy_with_app(tmp_path / "story")
    # A click every 5 s of event time: an hour passes every 36 s, so the stream is still going when it restarts.
    nb = nbformat.read(path, as_version=4)
    [cell] = [c for c in nb.cells if c.source.startswith("%%aiflow task stream")]
    cell.source = cell.source.replace("2026-11-27T00:00 3'", "2026-11-27T00:00 3 5'")
    nbformat.write(nb, path)
    client = service.client()
    for wf in workflows_from_notebook(path):
        client.submit(wf)
    ex = client.start_execution("spark_clicks")
    wait(lambda: len(trained_hours(client)) >= 1, 300, "the first hour to be trained")
    [first] = client.task_executions(ex)
    old, old_started = spark_job(service.home, first.id)
    assert process.alive(old, old_started)

    client.send_event("model_drift")
    wait(lambda: stream_runs(client, ex) == [(TaskStatus.STOPPED, 1), (TaskStatus.RUNNING, 2)], 180, "the restart")
    wait(lambda: not process.alive(old, old_started) and not live_in_group(old), 60, "the old Spark job to be gone")
    second = client.task_executions(ex)[1]
    wait(lambda: (service.home / "runs" / str(second.id) / "1" / HANDLE_FILE).exists(), 60, "the new job")
    new, new_started = spark_job(service.home, second.id)
    assert new != old and process.alive(new, new_started)

    wait(lambda: len(trained_hours(client)) == 3, 300, "every hour to be trained after the restart")
    client.stop_task(ex, "stream")
    wait(lambda: client.task_execution(second.id).status.finished, 120, "the stream to stop")
    assert client.task_execution(second.id).status is TaskStatus.STOPPED
    assert trained_hours(client) == HOURS  # each once, across the restart
    assert len(client.executions(workflow="spark_training")) == 3
    assert sorted(e.value["start"] for e in client.events(key="hour_complete")) == HOURS
    models = [json.loads(p.read_text()) for p in sorted((path.parent / "clicks_data" / "models").glob("*.json"))]
    assert [m["rows"] for m in models] == [720, 720, 720]  # a click every 5 s of event time, none twice
    wait(lambda: not process.alive(new, new_started) and not live_in_group(new), 60, "the new Spark job to be gone")
