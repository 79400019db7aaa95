"""The story of DESIGN.md through a real service: a stream that never ends sends
``hour_complete`` as its watermark passes each hour; a trainer runs once per hour,
also when the stream is restarted and when the service is SIGKILLed mid-stream."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from aiflow_nb import BashTask, NotebookTask, TaskStatus, Workflow
from aiflow_nb.client import Client
from aiflow_nb.notebooks import write_code_notebook
from tests.conftest import RunningService
from tests.server import wait

#: The stream replays its data from midnight each time it starts, 20 minutes of
#: event time per step, up to the hour written in limit.txt (the test moves it).
STREAM = (
    "import time\n"
    "from datetime import datetime, timedelta\n"
    "from pathlib import Path\n"
    "from aiflow_nb import Watermark, stop_requested",
    "wm = Watermark(key='hour_complete', every=timedelta(hours=1))\n"
    "t = datetime.fromisoformat('2026-11-27T00:00:00+00:00')\n"
    "while not stop_requested():\n"
    "    limit = t.replace(hour=0) + timedelta(hours=int(Path(data, 'limit.txt').read_text()))\n"
    "    if t < limit:\n"
    "        t += timedelta(minutes=20)\n"
    "        wm.advance(t)\n"
    "    time.sleep(0.5)",
)


def trained_windows(data: Path) -> list[str]:
    path = data / "trained.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["value"]["start"][11:16] for line in lines]


def successes(client: Client) -> int:
    return len(client.executions(workflow="train", status="SUCCESS"))


def test_every_hour_is_trained_exactly_once_across_a_stream_restart_and_a_service_kill(
    service: RunningService, home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "limit.txt").write_text("4")
    with Workflow("clicks") as clicks:
        stream = NotebookTask(
            "stream",
            notebook=write_code_notebook(tmp_path / "stream.ipynb", *STREAM, parameters="data = ''"),
            parameters={"data": str(data)},
            streaming=True,
        )
        stream.action_on_event_received("RESTART", "model_drift")
    with Workflow("train") as train:
        BashTask("fit", command=f'echo "$AIFLOW_NB_EVENT" >> {shlex.quote(str(data / "trained.jsonl"))}')
    train.trigger_on("hour_complete")
    client = service.client()
    client.submit(clicks)
    client.submit(train)
    ex = client.start_execution("clicks")

    wait(lambda: successes(client) == 4, 120, "hours 0-3 to be trained")

    # Drift: the stream restarts (seq 2) and replays its data from midnight; no hour is sent again.
    client.send_event("model_drift")
    wait(
        lambda: [t.status for t in client.task_executions(ex)] == [TaskStatus.STOPPED, TaskStatus.RUNNING],
        60,
        "the stream to restart",
    )
    (data / "limit.txt").write_text("8")
    wait(lambda: successes(client) == 8, 120, "hours 4-7 to be trained")

    # Kill the service while the stream sends the next hours; its task lives on.
    (data / "limit.txt").write_text("12")
    wait(lambda: successes(client) >= 9, 120, "hour 8 to be trained")
    service.kill()
    restarted = RunningService(home).start()
    try:
        client = restarted.client()
        wait(lambda: successes(client) == 12, 120, "hours 8-11 to be trained after the restart")
        [first, second] = client.task_executions(ex)
        assert (first.seq, first.status, second.seq, second.status) == (
            1,
            TaskStatus.STOPPED,
            2,
            TaskStatus.RUNNING,
        )
        client.stop_task(ex, "stream")
        wait(lambda: client.task_executions(ex)[-1].status is TaskStatus.STOPPED, 60, "the stream to stop")
        assert len(client.events(key="hour_complete")) == 12
        assert successes(client) == 12
        assert len(client.executions(workflow="train")) == 12
    finally:
        restarted.stop()
    assert trained_windows(data) == [f"{h:02d}:00" for h in range(12)]
