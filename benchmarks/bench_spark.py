"""The spark operator: event to the job RUNNING, the job's start, watermark to training RUNNING.

    .venv/bin/python benchmarks/bench_spark.py             # 3 runs, 4 hours of event time each
    .venv/bin/python benchmarks/bench_spark.py --quick     # 1 run, 2 hours

Needs ``pip install 'aiflow-nb[spark]'`` and Java 17.  A service on a temp home (the ``local``
executor) runs a workflow whose streaming ``spark`` task starts on an event: a Structured Streaming
job (rate source, event times 30 s apart, a micro-batch a second) whose StreamingQueryListener gives
each progress's event-time watermark to a ``Watermark``; each ``hour_complete`` triggers a bash
training task.  The listener logs when it saw each progress (wall clock), so this prints:

- event to RUNNING: the triggering event's append to the stream task's run RUNNING (the engine's
  start time of the run), and to the job's process started (its handle written by the runner);
- job start: the run starting to the SparkSession ready, and to the first micro-batch's progress;
- watermark to training RUNNING: the listener seeing the progress whose watermark passes an hour to
  that hour's training run starting (goal: at most 1 s beyond Spark's progress interval, 1 s here),
  and of it the hour_complete event's append to the training run starting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from _common import print_machine, print_table, record

from aiflow_nb import BashTask, TaskStatus, Workflow
from aiflow_nb.client import Client
from aiflow_nb.executors import process
from aiflow_nb.operators.spark import SparkSubmitTask
from aiflow_nb.server import control

APP = """
import json, sys, time
from datetime import datetime, timedelta, timezone
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.streaming import StreamingQueryListener
from aiflow_nb import Watermark

timings, hours = sys.argv[1], int(sys.argv[2])
start = datetime(2026, 11, 27, tzinfo=timezone.utc)
end = start + timedelta(hours=hours)


def note(**fields):
    with open(timings, "a") as f:
        f.write(json.dumps({"at": time.time(), **fields}) + "\\n")


class Listener(StreamingQueryListener):
    def __init__(self):
        self.watermark = Watermark(key="hour_complete", every=timedelta(hours=1))
        self.watermark.advance(start)  # Spark's first watermark may be hours in already

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        seen = time.time()
        reported = event.progress.eventTime.get("watermark")
        note(what="progress", seen=seen)
        if not reported:
            return
        at = datetime.fromisoformat(reported.replace("Z", "+00:00"))
        if at >= start:
            for window in self.watermark.advance(min(at, end)):
                note(what="window", start=window["start"], seen=seen)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass


spark = SparkSession.builder.appName("bench").getOrCreate()
note(what="session")
spark.streams.addListener(Listener())
rows = (
    spark.readStream.format("rate").option("rowsPerSecond", 20).load()
    .select((F.lit(int(start.timestamp())) + F.col("value") * 30).cast("timestamp").alias("event_time"))
    .where(F.col("event_time") < F.lit((end + timedelta(minutes=1)).isoformat()).cast("timestamp"))
    .withWatermark("event_time", "0 seconds")
)
rows.writeStream.format("noop").trigger(processingTime="1 second").start().awaitTermination()
"""


def wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def one_run(folder: Path, hours: int) -> dict[str, list[float]]:
    app, timings, home = folder / "app.py", folder / "timings.jsonl", folder / "home"
    app.write_text(APP)
    server, _ = control.start(home, flags=["--executor", "local"])
    client = Client(server.url, server.token, home=home)
    try:
        with Workflow("stream") as stream_wf:
            stream = SparkSubmitTask("stream", app=str(app), args=[str(timings), str(hours)], streaming=True)
            stream.action_on_event_received("START", "go")
        with Workflow("train") as train_wf:
            BashTask("train", command="true")
        train_wf.trigger_on("hour_complete")
        client.submit(stream_wf)
        client.submit(train_wf)
        ex = client.start_execution("stream")
        client.send_event("go")
        [go] = client.events(key="go")

        def trained() -> int:
            return len([e for e in client.executions(workflow="train") if e.status.finished])

        wait(lambda: trained() == hours, 600, "every hour trained")
        [te] = client.task_executions(ex)
        notes = [json.loads(line) for line in timings.read_text().splitlines()]
        began = te.start_time.timestamp()  # type: ignore[union-attr]
        handle = (home / "runs" / str(te.id) / str(te.attempt) / "handle.json").stat().st_mtime  # the job started
        session = next(n["at"] for n in notes if n["what"] == "session")
        first = next(n["seen"] for n in notes if n["what"] == "progress")
        windows = {n["start"]: n["seen"] for n in notes if n["what"] == "window"}
        sent = {
            datetime.fromisoformat(e.value["start"]).isoformat(): e.create_time.timestamp()  # type: ignore[union-attr]
            for e in client.events(key="hour_complete")
        }
        delays, appends = [], []
        for execution in client.executions(workflow="train"):
            hour = datetime.fromisoformat(execution.event["value"]["start"]).isoformat()  # type: ignore[index]
            [run] = client.task_executions(execution.id)
            running = run.start_time.timestamp()  # type: ignore[union-attr]
            delays.append(running - windows[hour])
            appends.append(running - sent[hour])
        client.stop_task(ex, "stream")
        wait(lambda: client.task_execution(te.id).status is TaskStatus.STOPPED, 120, "the stream to stop")
        return {
            "event to RUNNING": [began - go.create_time.timestamp()],  # type: ignore[union-attr]
            "event to the job's process started": [handle - go.create_time.timestamp()],  # type: ignore[union-attr]
            "RUNNING to SparkSession ready": [session - began],
            "RUNNING to first progress": [first - began],
            "watermark seen to training RUNNING": delays,
            "hour_complete appended to training RUNNING": appends,
        }
    finally:
        client.close()
        control.stop(home)
        kill_jobs(home)


def kill_jobs(home: Path) -> None:
    """Kill, by pid, the Spark jobs a failed run left (they live in sessions of their own)."""
    for path in home.glob("runs/*/*/handle.json"):
        handle = json.loads(path.read_text())
        if process.alive(handle["pid"], handle.get("started")):
            os.killpg(handle["pid"], signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hours", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1 run of 2 hours")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.hours = 1, 2
    print("aiflow-nb benchmark: the spark operator")
    print_machine()
    figures: dict[str, list[float]] = {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="aiflow-bench-spark-") as tmp:
            for key, values in one_run(Path(tmp), args.hours).items():
                figures.setdefault(key, []).extend(values)
        print(f"run {i + 1} of {args.runs} done", flush=True)
    rows = []
    for key, values in figures.items():
        median = statistics.median(values)
        rows.append(
            [key, len(values), f"{median * 1000:,.0f} ms", f"{min(values) * 1000:,.0f} - {max(values) * 1000:,.0f} ms"]
        )
        record(key, median * 1000, "ms", "<= 1000 ms" if key.startswith("watermark") else "-")
    print_table(["measure", "samples", "median", "min - max"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
