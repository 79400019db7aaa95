"""``aiflow-nb workflow ...``: submit, list, show, delete, pause, resume, graph, backfill, replay."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

from aiflow_nb import errors
from aiflow_nb.cli.args import bound, time_arg
from aiflow_nb.cli.output import Output
from aiflow_nb.client import Client
from aiflow_nb.tables import WORKFLOW_COLUMNS, text_fields, text_table, workflow_row


def load_workflows(path: Path) -> list[Any]:
    """The workflows defined by a .py file, a .json spec or an .ipynb notebook."""
    from aiflow_nb.workflow import Workflow

    if not path.exists():
        raise errors.SpecError(f"{path} does not exist")
    if path.suffix == ".json":
        try:
            return [Workflow.from_spec(path.read_text())]
        except errors.AiflowError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    if path.suffix == ".ipynb":
        from aiflow_nb.workflow.cells import workflows_from_notebook

        return workflows_from_notebook(path)
    if path.suffix != ".py":
        raise errors.SpecError(f"{path}: expected a .py, .json or .ipynb file")
    try:
        namespace = runpy.run_path(str(path), run_name="__aiflow_nb_submit__")
    except errors.AiflowError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except Exception as exc:
        raise errors.SpecError(f"{path} failed: {type(exc).__name__}: {exc}") from None
    found = [v for v in namespace.values() if isinstance(v, Workflow)]
    if not found:
        raise errors.SpecError(f"{path} defines no Workflow")
    return found


def workflow_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    ns = args.namespace or "default"
    if args.action == "submit":
        rows = []
        for wf in load_workflows(Path(args.target)):
            version = client.submit(wf)
            rows.append({"namespace": wf.namespace, "name": wf.name, "version": version})
        out.rows(rows, ("namespace", "name", "version"))
    elif args.action == "list":
        out.rows([workflow_row(w) for w in client.workflows()], WORKFLOW_COLUMNS)
    elif args.action == "show":
        info = client.workflow_info(args.target, ns)
        spec = client.workflow(args.target, ns, info.version).to_spec()
        data = info.to_dict()
        shown = {k: v for k, v in workflow_row(info).items() if k not in ("latest_execution", "next_runs")}
        for task, due in data["next_runs"].items():
            shown[f"next run {task}"] = due
        text = text_fields(shown)
        tasks = [
            {"task": t["name"], "kind": t["kind"], "rules": len(t["rules"]), "streaming": t["streaming"]}
            for t in spec.get("tasks", [])
        ]
        out.one({**data, "spec": spec}, text + "\n\n" + text_table(tasks, ("task", "kind", "rules", "streaming")))
    elif args.action == "delete":
        client.delete_workflow(args.target, ns)
        out.one({"deleted": True}, f"deleted {ns}/{args.target}")
    elif args.action in ("pause", "resume"):
        getattr(client, args.action)(args.target, ns)
        out.one({args.action + "d": True}, f"{args.action}d {ns}/{args.target}")
    elif args.action == "graph":
        svg = client.graph_svg(args.target, ns)
        if args.output_file:
            Path(args.output_file).write_text(svg)
            out.one({"written": args.output_file}, f"wrote {args.output_file}")
        else:
            sys.stdout.write(svg)
    elif args.action == "backfill":
        if not args.start or not args.end:
            raise errors.InvalidScheduleError("workflow backfill needs --start and --end")
        start, end = time_arg(args.start, "--start"), time_arg(args.end, "--end")
        count = client.backfill(args.target, start, end, ns)
        out.one({"ticks": count}, f"sent the ticks of {count} due time(s) of {ns}/{args.target}")
    elif args.action == "replay":
        since, until = bound(args.since, "--since"), bound(args.until, "--until")
        if args.target:  # a draft file
            found = [w for w in load_workflows(Path(args.target)) if args.name is None or w.name == args.name]
            if len(found) != 1:
                raise errors.SpecError(f"{args.target}: {len(found)} workflows match; name one with --name")
            result = client.replay(found[0], since, until, args.outcomes, args.diff)
        else:  # the submitted version
            result = client.replay(
                args.name, since, until, args.outcomes, args.diff, namespace=ns, version=args.workflow_version
            )
        out.one(result.to_dict(), "\n".join(result.lines()))
    return 0
