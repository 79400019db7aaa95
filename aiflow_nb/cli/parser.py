"""The ``aiflow-nb`` argument parser: every command, its arguments and the function that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from aiflow_nb._version import __version__
from aiflow_nb.cli.events import event_cmd
from aiflow_nb.cli.output import Output
from aiflow_nb.cli.runs import execution_cmd, task_cmd
from aiflow_nb.cli.server import server_cmd
from aiflow_nb.cli.workflows import workflow_cmd
from aiflow_nb.server.options import add_engine_arguments


def add_parameter_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``-p NAME=VALUE`` (repeatable), typed as papermill's ``-p``."""
    parser.add_argument("-p", "--parameter", dest="param", action="append", default=[], metavar="NAME=VALUE", help=help)


def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> argparse.ArgumentParser:
        # Subcommands take the options too, without resetting what came before them.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument(
            "--home",
            type=Path,
            default=argparse.SUPPRESS if suppress else None,
            help="aiflow-nb home (default: $AIFLOW_NB_HOME or ~/.aiflow_nb)",
        )
        p.add_argument("-o", "--output", choices=("table", "json"), default=argparse.SUPPRESS if suppress else "table")
        return p

    common = options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="aiflow-nb", description="Event-driven workflows for Jupyter.", parents=[options(suppress=False)]
    )
    parser.add_argument("--version", action="version", version=f"aiflow-nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", parents=[common], help="start, stop or check the service")
    server.add_argument("action", choices=("start", "stop", "status"))
    server.add_argument("--ip", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0, help="default: a free port")
    server.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
    add_engine_arguments(server)
    server.set_defaults(run=server_cmd)

    wf = sub.add_parser("workflow", parents=[common], help="submit and manage workflows")
    wf.add_argument(
        "action", choices=("submit", "list", "show", "delete", "pause", "resume", "graph", "backfill", "replay")
    )
    wf.add_argument("target", nargs="?", help="FILE (.py, .json, .ipynb) for submit, else the workflow name")
    wf.add_argument("--namespace", default=None, help="default: 'default'")
    wf.add_argument("--out", dest="output_file", help="graph: write the SVG here")
    wf.add_argument("--start", help="backfill: first time (ISO 8601; UTC unless a zone is given)")
    wf.add_argument("--end", help="backfill: last time")
    wf.add_argument("--name", help="replay: the workflow of FILE, or without FILE the submitted one, to replay")
    wf.add_argument(
        "--version",
        dest="workflow_version",
        type=int,
        metavar="N",
        help="replay --name without FILE: this version (default latest)",
    )
    wf.add_argument("--since", help="replay: after this offset, time ago (24h, 30m, 7d) or ISO time")
    wf.add_argument("--until", help="replay: up to this offset or ISO time")
    wf.add_argument("--outcomes", default="recorded", help="replay: success, failed or recorded")
    wf.add_argument("--diff", action="store_true", help="replay: compare with the submitted version")
    wf.set_defaults(run=workflow_cmd, needs_target=("submit", "show", "delete", "pause", "resume", "graph", "backfill"))

    ex = sub.add_parser("execution", parents=[common], help="start, stop and list executions")
    ex.add_argument("action", choices=("start", "stop", "list", "show"))
    ex.add_argument("target", nargs="?", help="workflow name (start, list) or execution id (stop, show)")
    ex.add_argument("--namespace", default=None, help="start: default 'default'; list: filter")
    ex.add_argument("--status", default=None)
    add_parameter_option(ex, "start: override a task parameter for this execution (repeatable)")
    ex.set_defaults(run=execution_cmd, needs_target=("start", "stop", "show"))

    task = sub.add_parser("task", parents=[common], help="task executions of an execution")
    task.add_argument("action", choices=("list", "start", "stop", "restart", "log", "notebook", "why"))
    task.add_argument(
        "target",
        nargs="?",
        help="list: an execution id or a workflow name (its latest execution); start, stop, restart: an "
        "execution id; log, notebook, why: a task execution id",
    )
    task.add_argument("task", nargs="?", help="task name (start, stop, restart)")
    task.add_argument("--namespace", default=None, help="list WORKFLOW: default 'default'")
    task.add_argument("--out", dest="output_file", help="notebook: write it here")
    add_parameter_option(task, "start: override a parameter of the task for this run (repeatable)")
    task.set_defaults(run=task_cmd, needs_target=("list", "start", "stop", "restart", "log", "notebook", "why"))

    ev = sub.add_parser("event", parents=[common], help="send, list and follow events")
    ev.add_argument("action", choices=("send", "list", "tail"))
    ev.add_argument("key", nargs="?", help="send: the event key")
    ev.add_argument("value", nargs="?", help="send: the value (JSON, else a string)")
    ev.add_argument("--namespace", default=None, help="send: default 'default'; list: filter")
    ev.add_argument(
        "--file", default=None, metavar="FILE", help="send: the events of an NDJSON file (- for stdin), all or none"
    )
    ev.add_argument("--since", type=int, default=None)
    ev.add_argument("--limit", type=int, default=100)
    ev.add_argument("--key", dest="key_filter", default=None, help="list/tail: only this key")
    ev.set_defaults(run=event_cmd)

    # verify: the stored state against the log's replay (exit 0 consistent, 1 differences, 2 cannot verify).
    def verify_cmd(args: argparse.Namespace, out: Output) -> int:
        from aiflow_nb.scheduler import collector
        from aiflow_nb.verify import main as verify_main

        collector.settle()  # this process folds the whole log: the service's settings
        return verify_main(args.home)

    check = sub.add_parser("verify", parents=[common], help="check the stored state is what the event log implies")
    check.set_defaults(run=verify_cmd, action=None)
    return parser
