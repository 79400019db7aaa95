"""The spark operator: event to the job RUNNING, the job's start, watermark to training RUNNING.

    .venv/bin/python benchmarks/bench_spark.py             # 3 runs, 4 hours of event time each
    .venv/bin/python benchmarks/bench_spark.py --quick     # 1 run, 2 hours

Needs ``pip install 'aiflow-nb[spark]'`` and Java 17.  An engine on a temp home (the ``local``
executor) runs a workflow whose streaming ``spark`` task starts on an event: a Structured Streaming
job (rate source, event times 30 s apart, a micro-batch a second) whose StreamingQueryListener gives
each progress's event-time watermark to a ``Watermark``; each ``hour_complete`` triggers a bash
training task.  The listener logs when it saw each progress (wall clock), so this prints:

- event to RUNNING: the triggering event's append to the stream task's run starting (the engine's
  start time of the run);
- job start: the run starting to the SparkSession ready, and to the first micro-batch's progress;
- watermark to training RUNNING: the listener seeing the progress whose watermark passes an hour to
  that hour's training run starting (goal: at most 1 s beyond Spark's progress interval, 1 s here),
  and of it the hour_complete event's append to the training run starting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from _common import print_machine, print_table, record

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow
from aiflow_nb.operators.spark import SparkSubmitTask

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


def one_run(folder: Path, hours: int) -> dict[str, list[float]]:
    app, timings = folder / "app.py", folder / "timings.jsonl"
    app.write_text(APP)
    engine = Engine(folder / "home", executor="local", stop_grace=60.0)
    try:
        with Workflow("stream") as stream_wf:
            SparkSubmitTask(
                "stream", app=str(app), args=[str(timings), str(hours)], streaming=True
            ).action_on_event_received("START", "go")
        with Workflow("train") as train_wf:
            BashTask("train", command="true")
        train_wf.trigger_on("hour_complete")
        engine.submit(stream_wf)
        engine.submit(train_wf)
        ex = engine.start_execution("stream")
        engine.send_event("go")
        [go] = engine.events(key="go")
        engine.wait_for(
            lambda: len([e for e in engine.executions(workflow="train") if e.status.finished]) == hours,
            timeout=600,
            what="every hour trained",
        )
        [te] = engine.task_executions(ex)
        notes = [json.loads(line) for line in timings.read_text().splitlines()]
        began = te.start_time.timestamp()  # type: ignore[union-attr]
        session = next(n["at"] for n in notes if n["what"] == "session")
        first = next(n["seen"] for n in notes if n["what"] == "progress")
        windows = {n["start"]: n["seen"] for n in notes if n["what"] == "window"}
        sent = {
            datetime.fromisoformat(e.value["start"]).isoformat(): e.create_time.timestamp()  # type: ignore[union-attr]
            for e in engine.events(key="hour_complete")
        }
        delays, appends = [], []
        for execution in engine.executions(workflow="train"):
            hour = datetime.fromisoformat(execution.event["value"]["start"]).isoformat()  # type: ignore[index]
            [run] = engine.task_executions(execution.id)
            running = run.start_time.timestamp()  # type: ignore[union-attr]
            delays.append(running - windows[hour])
            appends.append(running - sent[hour])
        engine.stop_task(ex, "stream")
        engine.wait_for(lambda: engine.task_execution(te.id).status is TaskStatus.STOPPED, timeout=120, what="stopped")
        return {
            "event to RUNNING": [began - go.create_time.timestamp()],  # type: ignore[union-attr]
            "RUNNING to SparkSession ready": [session - began],
            "RUNNING to first progress": [first - began],
            "watermark seen to training RUNNING": delays,
            "hour_complete appended to training RUNNING": appends,
        }
    finally:
        engine.close()


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
