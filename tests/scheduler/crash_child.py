"""The engine process that tests/scheduler/test_exactly_once.py kills with SIGKILL.

``python tests/scheduler/crash_child.py HOME OUT_FILE``: opens ``Engine(HOME)``,
submits a workflow that a trigger starts once per ``tick`` event, whose one
task appends its triggering event's offset to ``OUT_FILE``, sends the
``tick`` events ``e0..e299`` (idempotency keys, so a restarted child resends
them all without duplicates) in small groups interleaved with scheduler
steps, and keeps stepping until every execution has ended.

It prints ``sent N`` after each group and ``done`` at the end (flushed), so
the test can pick its kill point.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiflow_nb import BashTask, Engine, Event, EventCondition, TaskStatus, Workflow, WorkflowStatus

TOTAL = 300
GROUP = 5
MAX_PARALLEL = 8


def workflow(out_file: str) -> Workflow:
    # The triggering event arrives as JSON in $AIFLOW_NB_EVENT; a bash regex
    # keeps the task fast (no interpreter start) and the short append atomic.
    command = (
        r"[[ $AIFLOW_NB_EVENT =~ \"offset\":\ ?([0-9]+) ]] || exit 3; "
        f'echo "${{BASH_REMATCH[1]}}" >> {shlex.quote(out_file)}'
    )
    with Workflow("ticks") as wf:
        BashTask("record", command=command)
    wf.trigger_on(EventCondition("tick"))
    return wf


def assert_each_offset_ran_once(
    executions: list[Any], task_executions: Callable[[int], list[Any]], offsets: Counter[int], out: Path, label: str
) -> None:
    """One execution per event offset, each one successful run of the task, and each offset written once."""
    per_event = Counter(ex.event["offset"] for ex in executions if ex.event is not None)
    assert per_event == offsets, (
        f"{label}: events without an execution {sorted(offsets - per_event)}, "
        f"events with extra executions {sorted(per_event - offsets)}"
    )
    problems = []
    for ex in executions:
        tes = task_executions(ex.id)
        runs = [(te.task, te.seq, te.attempt, te.status, te.event["offset"] if te.event else None) for te in tes]
        if ex.status is not WorkflowStatus.SUCCESS or runs != [
            ("record", 1, 1, TaskStatus.SUCCESS, ex.event["offset"])
        ]:
            problems.append((ex.id, ex.status.value, runs, [te.error for te in tes]))
    assert not problems, f"{label}: {problems[:5]}"
    written = Counter(int(line) for line in out.read_text().split())
    assert written == offsets, (
        f"{label}: offsets written twice {sorted(written - offsets)}, never written {sorted(offsets - written)}"
    )


def unfinished(engine: Engine) -> int:
    return len(engine.executions(status="RUNNING"))


def main(home: str, out_file: str) -> int:
    engine = Engine(home, max_parallel=MAX_PARALLEL, poll_interval=0.01)
    engine.submit(workflow(out_file))
    for start in range(0, TOTAL, GROUP):
        # Keep a small backlog so the stream of events lasts as long as the work.
        engine.wait_for(lambda: unfinished(engine) < 2 * MAX_PARALLEL, timeout=120, what="a small backlog")
        ids = range(start, min(start + GROUP, TOTAL))
        engine.send_events([Event("tick", {"i": i}) for i in ids], [f"e{i}" for i in ids])
        engine.step()
        print(f"sent {ids[-1] + 1}", flush=True)
    engine.wait_for(
        lambda: len(engine.executions()) >= TOTAL and unfinished(engine) == 0,
        timeout=150,
        what="every execution to end",
    )
    engine.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main(sys.argv[1], sys.argv[2])
    print(f"took {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    sys.exit(code)
