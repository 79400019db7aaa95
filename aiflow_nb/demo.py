"""``make demo``: a small event-driven workflow, run by a real service.

It writes two notebooks to a temp folder, submits a workflow where
``prepare`` (a notebook) runs first, ``train`` (a notebook) starts on each
``data_ready`` event, and ``report`` (a shell command) runs after
``train`` succeeds; then it starts the service on a temp home, sends the
event and prints every status change as the stream reports it, and stops
the service.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()  # before nbformat's import, below

from aiflow_nb.client import Client  # noqa: E402
from aiflow_nb.events import keys  # noqa: E402
from aiflow_nb.notebooks import write_code_notebook  # noqa: E402
from aiflow_nb.server import control  # noqa: E402
from aiflow_nb.workflow import BashTask, NotebookTask, TaskAction, Workflow  # noqa: E402


def build(folder: Path) -> Workflow:
    prepare = write_code_notebook(
        folder / "prepare.ipynb", "rows = list(range(10))\nprint('prepared', len(rows), 'rows')"
    )
    train = write_code_notebook(
        folder / "train.ipynb",
        "hour = (aiflow_event or {}).get('value')\nprint(f'training on hour {hour} with lr={lr}')",
        parameters="lr = 0.1",
    )
    with Workflow("demo") as wf:
        NotebookTask("prepare", notebook=prepare)
        t = NotebookTask("train", notebook=train, parameters={"lr": 0.01})
        t.action_on_event_received(TaskAction.START, "data_ready")
        BashTask("report", command="echo report for execution $AIFLOW_NB_EXECUTION_ID").start_after(t)
    return wf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the aiflow-nb demo against a real service.")
    parser.add_argument("--home", type=Path, help="aiflow-nb home (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiflow-nb-demo-") as tmp:
        home = (args.home or Path(tmp) / "home").resolve()
        server, _ = control.start(home)
        print(f"started the aiflow-nb service at {server.url} (pid {server.pid}, home {home})")
        try:
            with Client(home=home) as client:
                return run(client, Path(tmp))
        finally:
            control.stop(home)
            print("stopped the service")


def run(client: Client, folder: Path) -> int:
    version = client.submit(build(folder))
    print(f"submitted workflow 'demo' version {version}")
    since = client.health()["latest_offset"]
    ex = client.start_execution("demo")
    print(f"started execution {ex}; status changes as they happen (from the service's event stream):")
    stop = threading.Event()
    sent = False
    for e in client.stream(since=since, stop=stop):
        v = e.value
        if e.key == keys.TASK_STATUS and v["execution_id"] == ex:
            print(f"  [{e.offset:>3}] task {v['task']:<8} seq {v['seq']}  {v['status']}")
            if v["task"] == "prepare" and v["status"] == "SUCCESS" and not sent:
                sent = True
                offset = client.send_event("data_ready", "2026-11-27T10:00")
                print(f"  sent event 'data_ready' (offset {offset})")
        elif e.key == keys.EXECUTION_STATUS and v["execution_id"] == ex:
            print(f"  [{e.offset:>3}] execution {ex} {v['status']}")
            if v["status"] != "RUNNING":
                break
    status = client.execution(ex).status.value
    print(f"execution {ex}: {status}")
    for te in client.task_executions(ex):
        took = f"{te.duration:.2f} s" if te.duration is not None else "-"
        print(f"  {te.task:<8} seq {te.seq} {te.status.value:<8} {took}")
        for line in client.task_log(te.id).splitlines():
            if line.startswith(("prepared", "training", "report")):
                print(f"      | {line}")
    return 0 if status == "SUCCESS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
