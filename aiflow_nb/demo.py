"""``make demo``: a small event-driven workflow, run in-process.

It writes two notebooks to a temp folder, submits a workflow where
``prepare`` (a notebook) runs first, ``train`` (a notebook) starts on each
``data_ready`` event, and ``report`` (a shell command) runs after
``train`` succeeds; then it sends the event and prints every status change
as it happens.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nbformat
from nbformat import v4

from aiflow_nb import BashTask, Engine, NotebookTask, TaskAction, Workflow
from aiflow_nb.events import keys


def _notebook(path: Path, *cells: str, parameters: str | None = None) -> Path:
    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    if parameters is not None:
        nb.cells.append(v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(v4.new_code_cell(c) for c in cells)
    nbformat.write(nb, path)
    return path


def build(folder: Path) -> Workflow:
    prepare = _notebook(folder / "prepare.ipynb", "rows = list(range(10))\nprint('prepared', len(rows), 'rows')")
    train = _notebook(
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, help="aiflow-nb home (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiflow-nb-demo-") as tmp:
        home = args.home or Path(tmp) / "home"
        folder = Path(tmp)
        with Engine(home) as engine:
            version = engine.submit(build(folder))
            print(f"submitted workflow 'demo' version {version} to {home}")
            seen = engine.log.latest_offset()
            ex = engine.start_execution("demo")
            print(f"started execution {ex}; status changes as they happen:")

            def show() -> None:
                nonlocal seen
                for e in engine.events(since=seen):
                    seen = e.offset or seen
                    v = e.value
                    if e.key == keys.TASK_STATUS:
                        print(f"  [{e.offset:>3}] task {v['task']:<8} seq {v['seq']}  {v['status']}")
                    elif e.key == keys.EXECUTION_STATUS:
                        print(f"  [{e.offset:>3}] execution {v['execution_id']} {v['status']}")
                    else:
                        print(f"  [{e.offset:>3}] event {e.key!r} = {e.value!r}")

            def prepared() -> bool:
                show()
                return any(t.task == "prepare" and t.status.finished for t in engine.task_executions(ex))

            engine.wait_for(prepared, timeout=120, what="prepare to finish")
            engine.send_event("data_ready", "2026-11-27T10:00")

            def finished() -> bool:
                show()
                return engine.execution(ex).status.finished

            engine.wait_for(finished, timeout=120, what="the execution to finish")
            print(f"execution {ex}: {engine.execution(ex).status.value}")
            for te in engine.task_executions(ex):
                took = f"{te.duration:.2f} s" if te.duration is not None else "-"
                print(f"  {te.task:<8} seq {te.seq} {te.status.value:<8} {took}")
                out = engine.run_dir(te.id) / "log.txt"
                for line in out.read_text().splitlines():
                    if line.startswith(("prepared", "training", "report")):
                        print(f"      | {line}")
            return 0 if engine.execution(ex).status.value == "SUCCESS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
