"""The ``aiflow-nb`` command line.

Every command but ``server`` goes through the service.  A user mistake
exits non-zero with one line on stderr; ``-o json`` prints JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import runpy
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiflow_nb import errors
from aiflow_nb._version import __version__
from aiflow_nb.client import Client
from aiflow_nb.home import default_home
from aiflow_nb.server.options import add_engine_arguments, engine_flags
from aiflow_nb.startup import skip_slow_optional_imports
from aiflow_nb.tables import WORKFLOW_COLUMNS, printable, task_row, text_fields, text_table, workflow_row
from aiflow_nb.workflow import overrides
from aiflow_nb.workflow.records import TaskExecution


class Output:
    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def rows(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        print(json.dumps(list(rows), default=str, indent=2) if self.json else text_table(rows, columns))

    def tasks(self, runs: Sequence[TaskExecution]) -> None:
        """Task executions: JSON keeps the duration in seconds, the table shows it as people read it."""
        now = datetime.now(timezone.utc)
        self.rows([t.to_dict() if self.json else task_row(t, now) for t in runs], TASK_COLUMNS)

    def one(self, data: dict[str, Any], text: str | None = None) -> None:
        if self.json:
            print(json.dumps(data, default=str, indent=2))
        else:
            print(text if text is not None else text_fields(data))


def _value(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


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


# -- commands ------------------------------------------------------------------


def server_cmd(args: argparse.Namespace, out: Output) -> int:
    from aiflow_nb.server import control

    home = (args.home or default_home()).expanduser().resolve()
    if args.action == "start":
        if args.foreground:
            from aiflow_nb.server.main import main as serve

            argv = ["--home", str(home), "--ip", args.ip, "--port", str(args.port), *engine_flags(args)]
            return serve(argv)
        server, new = control.start(home, ip=args.ip, port=args.port, flags=engine_flags(args))
        out.one(
            {"url": server.url, "pid": server.pid, "home": str(home), "started": new},
            f"aiflow-nb {'started' if new else 'is already running'} at {server.url} (pid {server.pid}, home {home})",
        )
        return 0
    if args.action == "stop":
        stopped = control.stop(home)
        if stopped is None:
            out.one({"stopped": False, "home": str(home)}, f"no aiflow-nb service is running for {home}")
            return 0
        out.one({"stopped": True, "pid": stopped.pid}, f"stopped aiflow-nb (pid {stopped.pid})")
        return 0
    current = control.status(home)
    if current is None:
        out.one({"running": False, "home": str(home)}, f"no aiflow-nb service is running for {home}")
        return 3
    healthy = control.healthy(current)
    out.one(
        {"running": True, "healthy": healthy, "url": current.url, "pid": current.pid, "version": current.version},
        f"running at {current.url} (pid {current.pid}, version {current.version})"
        + ("" if healthy else ", NOT answering"),
    )
    return 0 if healthy else 1


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
        start, end = _time(args.start, "--start"), _time(args.end, "--end")
        count = client.backfill(args.target, start, end, ns)
        out.one({"ticks": count}, f"sent the ticks of {count} due time(s) of {ns}/{args.target}")
    elif args.action == "replay":
        since, until = _bound(args.since, "--since"), _bound(args.until, "--until")
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


def _bound(raw: str | None, what: str) -> int | datetime | None:
    """A replay window's bound: an offset, a time ago (24h, 30m, 7d) or an ISO 8601 time."""
    from aiflow_nb.scheduler import dryrun  # only a replay needs it

    return dryrun.parse_bound(raw, what, datetime.now(timezone.utc))


def _time(raw: str, what: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise errors.InvalidScheduleError(
            f"{what} must be an ISO 8601 time like 2026-11-27T10:00, got {raw!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


EXECUTION_COLUMNS = ("id", "namespace", "workflow", "version", "status", "start_time", "end_time")
TASK_COLUMNS = ("id", "task", "seq", "attempt", "status", "start_time", "duration", "error")


def execution_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "start":
        ns = args.namespace or "default"
        started = client.start_execution(args.target, ns, overrides.from_assignments(args.param))
        out.one({"id": started}, f"started execution {started} of {ns}/{args.target}")
    elif args.action == "stop":
        stopped = client.stop_execution(_int(args.target, "execution id"))
        out.one(stopped.to_dict(), f"execution {stopped.id} is {stopped.status.value}")
    elif args.action == "list":
        found = client.executions(workflow=args.target, namespace=args.namespace, status=args.status)
        out.rows([e.to_dict() for e in found], EXECUTION_COLUMNS)
    elif args.action == "show":
        shown = client.execution(_int(args.target, "execution id"))
        runs = client.task_executions(shown.id)
        now = datetime.now(timezone.utc)
        text = text_fields({k: v for k, v in shown.to_dict().items() if k != "event"})
        table = text_table([task_row(t, now) for t in runs], TASK_COLUMNS)
        out.one({**shown.to_dict(), "task_executions": [t.to_dict() for t in runs]}, text + "\n\n" + table)
    return 0


def task_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "list":
        out.tasks(client.task_executions(_execution_of(client, args.target, args.namespace or "default")))
    elif args.action in ("start", "stop", "restart"):
        if args.task is None:
            raise errors.AiflowError(f"task {args.action} needs EXECUTION and TASK")
        given = overrides.from_assignments(args.param)
        execution_id = _int(args.target, "execution id")
        if args.action == "start":
            out.tasks(client.start_task(execution_id, args.task, given))
        elif given:
            raise errors.InvalidParameterError(f"-p is for execution start and task start, not task {args.action}")
        else:
            out.tasks(getattr(client, f"{args.action}_task")(execution_id, args.task))
    elif args.action == "log":
        sys.stdout.write(client.task_log(_int(args.target, "task execution id")))
    elif args.action == "why":
        links = client.why(_int(args.target, "task execution id"))
        out.one({"links": [link.to_dict() for link in links]}, " <- ".join(link.text for link in links))
    elif args.action == "notebook":
        nb = client.task_notebook(_int(args.target, "task execution id"))
        text = json.dumps(nb, indent=1)
        if args.output_file:
            Path(args.output_file).write_text(text)
            print(f"wrote {args.output_file}", file=sys.stderr)
        else:
            print(text)
    return 0


EVENT_COLUMNS = ("offset", "namespace", "key", "value", "sender", "create_time")


def _event_row(e: Any) -> dict[str, Any]:
    d: dict[str, Any] = e.to_dict()
    d["value"] = json.dumps(e.value) if not isinstance(e.value, str) else e.value
    return d


def event_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "send" and args.file is not None:
        events, keys = _read_events(args.file)
        offsets = client.send_events(events, keys)
        out.one({"offsets": offsets}, f"sent {len(offsets)} events from {args.file} (offsets {_span(offsets)})")
    elif args.action == "send":
        offset = client.send_event(args.key, _value(args.value), args.namespace or "default")
        out.one({"offset": offset}, f"sent {args.key!r} at offset {offset}")
    elif args.action == "list":
        found = client.events(since=args.since or 0, limit=args.limit, key=args.key_filter, namespace=args.namespace)
        out.rows([e.to_dict() if out.json else _event_row(e) for e in found], EVENT_COLUMNS)  # JSON keeps types
    elif args.action == "tail":
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for event in client.stream(
                since=args.since if args.since is not None else client.health()["latest_offset"]
            ):
                if args.key_filter and event.key != args.key_filter:
                    continue
                if out.json:
                    print(json.dumps(event.to_dict(), default=str), flush=True)
                else:
                    row = _event_row(event)
                    print(printable(f"{row['offset']:>8}  {row['namespace']}/{row['key']}  {row['value']}"), flush=True)
        except KeyboardInterrupt:
            return 0
    return 0


def _read_events(path: str) -> tuple[list[Any], list[str | None]]:
    from aiflow_nb.events.ndjson import read_events

    if path == "-":
        return read_events(sys.stdin, "standard input")
    try:
        with open(path, encoding="utf-8") as source:
            return read_events(source, path)
    except OSError as exc:
        raise errors.AiflowError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise errors.InvalidEventError(f"{path} is not UTF-8 text") from None


def _span(offsets: Sequence[int]) -> str:
    """``41-43`` for a run of offsets, else ``41 to 57`` (some were sent before: idempotency keys)."""
    first, last = min(offsets), max(offsets)
    return f"{first}-{last}" if last - first + 1 == len(offsets) else f"{first} to {last}"


def _execution_of(client: Client, target: str, namespace: str) -> int:
    """An execution id as given, or the latest execution of the workflow so named."""
    if target.isdigit():
        return int(target)
    latest = client.workflow_info(target, namespace).latest_execution  # a NotFoundError names it
    if latest is None:
        raise errors.NotFoundError(f"workflow {namespace}/{target} has no execution yet")
    return latest.id


def _int(raw: str, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise errors.AiflowError(f"{what} must be a number, got {raw!r}") from None


# -- parser --------------------------------------------------------------------


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
    ex.add_argument(
        "-p",
        "--parameter",
        dest="param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="start: override a task parameter for this execution (repeatable; typed as papermill's -p)",
    )
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
    task.add_argument(
        "-p",
        "--parameter",
        dest="param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="start: override a parameter of the task for this run (repeatable)",
    )
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
        from aiflow_nb.verify import main as verify_main

        return verify_main(args.home)

    check = sub.add_parser("verify", parents=[common], help="check the stored state is what the event log implies")
    check.set_defaults(run=verify_cmd, action=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    skip_slow_optional_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    needs: tuple[str, ...] = getattr(args, "needs_target", ())
    if args.action in needs and not args.target:
        parser.error(f"{args.command} {args.action} needs a {'FILE' if args.action == 'submit' else 'name or id'}")
    if args.command == "workflow" and args.action == "replay" and not args.target and not args.name:
        parser.error("workflow replay needs a FILE, or --name of a submitted workflow")
    if args.command == "event" and args.action == "send" and not args.key and args.file is None:
        parser.error("event send needs a KEY (or --file FILE)")
    if args.command == "event" and args.action == "send" and args.key and args.file is not None:
        parser.error("event send takes a KEY or --file FILE, not both")
    run: Callable[[argparse.Namespace, Output], int] = args.run
    try:
        return run(args, Output(args.output))
    except errors.AiflowError as exc:
        print(f"aiflow-nb: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
