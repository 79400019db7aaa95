"""``aiflow-nb execution ...`` and ``aiflow-nb task ...``: runs of workflows and of their tasks."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiflow_nb import errors
from aiflow_nb.cli.args import number
from aiflow_nb.cli.output import TASK_COLUMNS, Output
from aiflow_nb.client import Client
from aiflow_nb.tables import task_row, text_fields, text_table
from aiflow_nb.workflow import overrides

EXECUTION_COLUMNS = ("id", "namespace", "workflow", "version", "status", "start_time", "end_time")


def execution_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "start":
        ns = args.namespace or "default"
        started = client.start_execution(args.target, ns, overrides.from_assignments(args.param))
        out.one({"id": started}, f"started execution {started} of {ns}/{args.target}")
    elif args.action == "stop":
        stopped = client.stop_execution(number(args.target, "execution id"))
        out.one(stopped.to_dict(), f"execution {stopped.id} is {stopped.status.value}")
    elif args.action == "list":
        found = client.executions(workflow=args.target, namespace=args.namespace, status=args.status)
        out.rows([e.to_dict() for e in found], EXECUTION_COLUMNS)
    elif args.action == "show":
        shown = client.execution(number(args.target, "execution id"))
        runs = client.task_executions(shown.id)
        now = datetime.now(UTC)
        text = text_fields({k: v for k, v in shown.to_dict().items() if k != "event"})
        table = text_table([task_row(t, now) for t in runs], TASK_COLUMNS)
        out.one({**shown.to_dict(), "task_executions": [t.to_dict() for t in runs]}, text + "\n\n" + table)
    return 0


def task_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "list":
        out.tasks(client.task_executions(execution_of(client, args.target, args.namespace or "default")))
    elif args.action in ("start", "stop", "restart"):
        if args.task is None:
            raise errors.AiflowError(f"task {args.action} needs EXECUTION and TASK")
        given = overrides.from_assignments(args.param)
        execution_id = number(args.target, "execution id")
        if args.action == "start":
            out.tasks(client.start_task(execution_id, args.task, given))
        elif given:
            raise errors.InvalidParameterError(f"-p is for execution start and task start, not task {args.action}")
        else:
            out.tasks(getattr(client, f"{args.action}_task")(execution_id, args.task))
    elif args.action == "log":
        sys.stdout.write(client.task_log(number(args.target, "task execution id")))
    elif args.action == "why":
        links = client.why(number(args.target, "task execution id"))
        out.one({"links": [link.to_dict() for link in links]}, " <- ".join(link.text for link in links))
    elif args.action == "notebook":
        nb = client.task_notebook(number(args.target, "task execution id"))
        text = json.dumps(nb, indent=1)
        if args.output_file:
            Path(args.output_file).write_text(text)
            print(f"wrote {args.output_file}", file=sys.stderr)
        else:
            print(text)
    return 0


def execution_of(client: Client, target: str, namespace: str) -> int:
    """An execution id as given, or the latest execution of the workflow so named."""
    if target.isdigit():
        return int(target)
    latest = client.workflow_info(target, namespace).latest_execution  # a NotFoundError names it
    if latest is None:
        raise errors.NotFoundError(f"workflow {namespace}/{target} has no execution yet")
    return latest.id
