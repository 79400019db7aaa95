"""How a user types operator tasks; ``mypy --strict`` accepts every line (tests/operators/test_typing.py)."""

from aiflow_nb import Task, TaskStatus, Workflow
from aiflow_nb.operators.spark import SparkSubmitTask
from aiflow_nb.workflow.tasks import OperatorTask, operator_task

with Workflow("typed") as wf:
    stream: Task = Task(
        "stream",
        operator="spark",
        params={"app": "clicks.py", "args": ["data", "2026-11-27T00:00", "3"]},
        streaming=True,
        max_retries=1,
        executor="local",
    )
    stream.action_on_event_received("RESTART", "model_drift")
    report = SparkSubmitTask("report", app="report.py", args=["--day", "1"], master="local[1]", stop_timeout=5.0)
    report.start_after(stream)
    shell = Task("shell", operator="bash", params={"command": "echo hi"}, timeout=60)
    shell.action_on_task_status("START", {report: TaskStatus.SUCCESS})
    generic: OperatorTask = OperatorTask("generic", operator="spark", params={"app": "x.py"})
    made: Task = operator_task("made", "spark", {"app": "y.py"}, retry_delay=2.5)

names: list[str] = [t.name for t in wf.tasks.values()]
