"""The spark operator on PySpark in local mode (Java 17): batch jobs, a failure with its error, a
Structured Streaming job stopped cleanly and re-attached after the engine and the job's runner died."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from aiflow_nb import Engine, Task, TaskStatus, Workflow
from aiflow_nb.executors import process
from aiflow_nb.executors.runner import HANDLE_FILE
from aiflow_nb.operators.spark import SparkSubmitTask
from tests.executors.test_local import claimed_pid

pytest.importorskip("pyspark", reason="the spark extra: pip install 'aiflow-nb[spark]'")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 (make setup installs it)", allow_module_level=True)

pytestmark = pytest.mark.timeout(400)

APPS = Path(__file__).parent / "spark_apps"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_batch_jobs_succeed_and_a_failing_one_records_its_error(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "n.txt"
    with Workflow("spark-batch") as wf:
        SparkSubmitTask("count", app=str(APPS / "count.py"), args=["1000", str(out)])
        Task("fails", operator="spark", params={"app": str(APPS / "count.py"), "args": ["fail", "x"]})
    engine.submit(wf)
    ex = engine.start_execution("spark-batch")
    engine.wait_for(lambda: engine.execution(ex).status.finished, timeout=300, what="both jobs to end")
    runs = {t.task: t for t in engine.task_executions(ex)}
    assert runs["count"].status is TaskStatus.SUCCESS and out.read_text() == "1000"
    assert runs["fails"].status is TaskStatus.FAILED
    assert "no_such_table" in (runs["fails"].error or "")
    assert "spark job started" in engine.task_log(runs["count"].id)


def test_a_missing_application_fails_the_run_at_start(engine: Engine, tmp_path: Path) -> None:
    with Workflow("spark-missing") as wf:
        SparkSubmitTask("t", app=str(tmp_path / "nope.py"))
    engine.submit(wf)
    ex = engine.start_execution("spark-missing")
    engine.wait_for(lambda: engine.execution(ex).status.finished, timeout=60, what="the run to fail")
    [te] = engine.task_executions(ex)
    missing = str(tmp_path / "nope.py")
    assert (te.status, te.error) == (TaskStatus.FAILED, f"the Spark application {missing!r} does not exist")


def test_a_stream_is_reattached_after_the_engine_and_its_runner_died_then_stopped_cleanly(
    home: Path, tmp_path: Path
) -> None:
    out, progress = tmp_path / "out", tmp_path / "progress.txt"
    engine = Engine(home, stop_grace=60.0)
    with Workflow("spark-stream") as wf:
        SparkSubmitTask("stream", app=str(APPS / "stream.py"), args=[str(out), str(progress)], streaming=True)
    engine.submit(wf)
    ex = engine.start_execution("spark-stream")
    engine.wait_for(lambda: len(lines(progress)) >= 2, timeout=300, what="two micro-batches")
    [te] = engine.task_executions(ex)
    run_dir = engine.run_dir(te.id)
    keeper = json.loads((run_dir / HANDLE_FILE).read_text())["pid"]
    runner, _ = claimed_pid(run_dir)
    engine.close()  # the engine goes (its runs live on) ...
    os.killpg(runner, signal.SIGKILL)  # ... and so does the job's runner
    seen = len(lines(progress))

    engine = Engine(home, stop_grace=60.0)
    try:
        engine.wait_for(lambda: len(lines(progress)) > seen, timeout=60, what="the stream to go on")
        engine.wait_for(lambda: claimed_pid(run_dir)[0] != runner, what="a runner to watch it again")
        assert engine.task_execution(te.id).status is TaskStatus.RUNNING
        engine.stop_task(ex, "stream")
        engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=120, what="STOPPED")
        assert engine.task_execution(te.id).status is TaskStatus.STOPPED
        assert json.loads((run_dir / "spark" / "exit.json").read_text())["stopped"] is True
        assert process.start_time(keeper) is None
        assert "watching the spark job again" in engine.task_log(te.id)
    finally:
        engine.close()
