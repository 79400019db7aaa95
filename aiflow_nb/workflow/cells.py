"""``%%aiflow`` cells as a model: parse the lines, keep a draft, build workflows.

The magics (live, in a kernel) and :func:`workflows_from_notebook` (a file,
never executed) both go through :func:`parse_cell` and :class:`Draft`, so a
notebook gives the same specs whether its cells are run or read.

Defining commands (the rest, such as ``submit``, are the magics' business)::

    %%aiflow setup --workflow WF [--namespace NS]
    %%aiflow task NAME --workflow WF [--notebook PATH] [--param k=v ...] [--streaming] [--retries N]
          [--retry-delay S] [--timeout S] [--executor NAME] [--operator NAME] [--on-event KEY[@NS] [--value V]]
          [--after a,b:FAILED] [--condition module:Class] [--action start|stop|restart] [--cron EXPR [--tz TZ]]
          [--interval S]
    %aiflow rule TASK --workflow WF [--on-event ...] [--after ...] [--condition ...] [--action ...]
    %aiflow workflow WF [--trigger-on KEY[@NS] [--value V]] [--cron EXPR [--tz TZ]] [--interval S] [--catchup]
          [--max-active N [--on-max-active queue|skip]]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from aiflow_nb.errors import SpecError, UnknownTaskError
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.operators.registry import operator_class
from aiflow_nb.workflow import context
from aiflow_nb.workflow.conditions import EventCondition, condition_from_spec
from aiflow_nb.workflow.status import TaskAction, TaskStatus
from aiflow_nb.workflow.tasks import NotebookTask, Task, operator_task
from aiflow_nb.workflow.workflow import Workflow

#: The commands that edit a draft; each has a parser below.
DEFINING = ("setup", "task", "rule", "workflow")
MAGIC = "aiflow"

#: (namespace, workflow, what, ...): re-registering a key replaces its cell.
Key = tuple[str, ...]


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises SpecError (one line) instead of exiting."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise SpecError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise SpecError(message or f"{self.prog}: exit {status}")

    def parse(self, args: Sequence[str]) -> dict[str, Any]:
        return vars(self.parse_args(list(args)))


def split(line: str) -> list[str]:
    """Shell-like words of a magic line."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise SpecError(f"cannot read {line.strip()!r}: {exc}") from None


def _identity(p: Parser, workflow_option: bool) -> None:
    if workflow_option:
        p.add_argument("--workflow", default=None, help="the workflow this cell belongs to")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE)


def _rule_options(p: Parser) -> None:
    p.add_argument("--on-event", action="append", default=[], metavar="KEY[@NS]")
    p.add_argument("--value", default=None, help="only events with this value (JSON, else a string)")
    p.add_argument("--after", action="append", default=[], metavar="a,b | a:FAILED,b:SUCCESS")
    p.add_argument("--condition", action="append", default=[], metavar="module:Class")
    p.add_argument("--action", default=None, choices=("start", "stop", "restart"))


def _schedule_options(p: Parser) -> None:
    p.add_argument("--cron", default=None)
    p.add_argument("--tz", default=None)
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS")


def _parsers() -> dict[str, Parser]:
    setup = Parser(f"%%{MAGIC} setup")
    _identity(setup, True)

    task = Parser(f"%%{MAGIC} task")
    task.add_argument("name")
    _identity(task, True)
    task.add_argument("--notebook", default=None)
    task.add_argument("--param", action="append", default=[], metavar="k=v")
    task.add_argument("--streaming", action="store_true")
    task.add_argument("--retries", type=int, default=0)
    task.add_argument("--retry-delay", type=float, default=0.0)
    task.add_argument("--timeout", type=float, default=None)
    task.add_argument("--executor", default=None, metavar="NAME")
    task.add_argument("--operator", default=None, metavar="NAME")
    _rule_options(task)
    _schedule_options(task)

    rule = Parser(f"%{MAGIC} rule")
    rule.add_argument("task")
    _identity(rule, True)
    _rule_options(rule)

    wf = Parser(f"%{MAGIC} workflow")
    wf.add_argument("workflow")
    _identity(wf, False)
    wf.add_argument("--trigger-on", action="append", default=[], metavar="KEY[@NS]")
    wf.add_argument("--value", default=None)
    _schedule_options(wf)
    wf.add_argument("--catchup", action="store_true")
    wf.add_argument("--max-active", type=int, default=None)
    wf.add_argument("--on-max-active", default=None, choices=("queue", "skip"))
    return {"setup": setup, "task": task, "rule": rule, "workflow": wf}


_PARSERS = _parsers()


def typed_value(raw: str) -> Any:
    """A --param value typed like papermill's ``-p``: bool, None, int, float, else str."""
    if raw in ("True", "False"):
        return raw == "True"
    if raw == "None":
        return None
    for kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break  # NaN and inf are no JSON: keep the text
        return value
    return raw


def json_value(raw: str) -> Any:
    """An event value: JSON when it parses, else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _clean_body(body: str) -> str:
    return "\n".join(line.rstrip() for line in body.strip("\n").splitlines())


@dataclass(frozen=True)
class Cell:
    """One parsed ``%%aiflow``/``%aiflow`` definition."""

    command: str
    workflow: str
    namespace: str
    options: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    #: Relative paths (--notebook) and a cell task's cwd resolve against it.
    base_dir: str = "."

    @property
    def key(self) -> Key:
        ident = (self.namespace, self.workflow, self.command)
        if self.command == "task":
            return (*ident, self.options["name"])
        if self.command == "rule":
            return (*ident, self.options["task"], json.dumps(self.options, sort_keys=True))
        return ident


def parse_cell(line: str, body: str | None = None, base_dir: str | Path = ".") -> Cell:
    """Parse a magic line (after ``%aiflow``/``%%aiflow``); ``body`` is None for a line magic.

    Raises SpecError (one line) on anything wrong that can be seen from the
    line alone.
    """
    words = split(line)
    if not words:
        raise SpecError(f"%{MAGIC} needs a command: {', '.join(DEFINING)}")
    command, args = words[0], words[1:]
    if command not in _PARSERS:
        raise SpecError(f"%{MAGIC}: unknown command {command!r}")
    opts = _PARSERS[command].parse(args)
    text = _clean_body(body or "")
    cell_magic = body is not None
    if command == "setup" and not cell_magic:
        raise SpecError(f"setup is a cell magic: %%{MAGIC} setup --workflow WF, then its code below")
    if command in ("rule", "workflow") and text:
        raise SpecError(f"{command} is a line magic: %{MAGIC} {command} ... (no code below it)")
    workflow = opts.pop("workflow")
    if not workflow:
        raise SpecError(f"%{'%' if cell_magic else ''}{MAGIC} {command} needs --workflow WF")
    namespace = opts.pop("namespace")
    where = f"task {opts['name']!r}" if command == "task" else f"%{MAGIC} {command}"
    if command == "task" and opts["operator"] is not None:
        # As a line magic, or a cell whose body only comments on it (IPython refuses an empty cell body).
        code = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if opts["notebook"] is not None or code:
            raise SpecError(f"{where}: --operator takes its fields from --param, not a notebook or code")
    elif command == "task":
        if opts["notebook"] is not None and text:
            raise SpecError(f"{where}: give either --notebook or code below the magic line, not both")
        if opts["notebook"] is None and not text:
            raise SpecError(f"{where} has no code: write it below the magic line, or give --notebook PATH")
    if command == "task":
        opts["param"] = dict(_param(where, p) for p in opts["param"])
    if command in ("task", "rule"):
        if opts["value"] is not None and len(opts["on_event"]) != 1:
            raise SpecError(f"{where}: --value needs exactly one --on-event")
        if opts["action"] is not None and not (opts["on_event"] or opts["after"] or opts["condition"]):
            raise SpecError(f"{where}: --action applies to --on-event, --after or --condition on the same line")
        if command == "rule" and not (opts["on_event"] or opts["after"] or opts["condition"]):
            raise SpecError(f"{where} {opts['task']}: give --on-event, --after or --condition")
        opts["after"] = [_after(where, a) for a in opts["after"]]
    if command == "workflow" and opts["value"] is not None and len(opts["trigger_on"]) != 1:
        raise SpecError(f"{where}: --value needs exactly one --trigger-on")
    if command in ("task", "workflow") and opts["tz"] is not None and opts["cron"] is None:
        raise SpecError(f"{where}: --tz needs --cron")
    for k in opts.get("on_event", []) + opts.get("trigger_on", []):
        _event_key(where, k)
    base = Path(base_dir).resolve()
    if opts.get("notebook") is not None:
        opts["notebook"] = str((base / Path(opts["notebook"]).expanduser()).resolve())
    return Cell(command, workflow, namespace, opts, text, str(base))


def _param(where: str, raw: str) -> tuple[str, Any]:
    name, eq, value = raw.partition("=")
    if not eq or not name.isidentifier():
        raise SpecError(f"{where}: --param needs NAME=VALUE with a Python name, got {raw!r}")
    return name, typed_value(value)


def _after(where: str, raw: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for item in raw.split(","):
        task, _, status = item.strip().partition(":")
        if not task:
            raise SpecError(f"{where}: --after needs task names, got {raw!r}")
        try:
            statuses[task] = TaskStatus((status or "SUCCESS").upper()).value
        except ValueError:
            names = ", ".join(s.value for s in TaskStatus)
            raise SpecError(f"{where}: --after {raw!r}: {status!r} is not a task status ({names})") from None
    return statuses


def _event_key(where: str, raw: str) -> tuple[str, str | None]:
    key, at, namespace = raw.rpartition("@")
    if not at:
        return raw, None
    if not key or not namespace:
        raise SpecError(f"{where}: expected KEY or KEY@NAMESPACE, got {raw!r}")
    return key, namespace


# -- building ------------------------------------------------------------------


def cell_notebook(parameters: dict[str, Any], setup: str | None, body: str) -> dict[str, Any]:
    """A cell task's notebook: a "parameters" cell, the workflow's setup, then the body."""
    from aiflow_nb.notebooks import code_notebook

    defaults = "\n".join(f"{k} = {v!r}" for k, v in parameters.items()) or "# no parameters"
    sources = [s for s in (setup, body) if s]
    nb = code_notebook(*sources, parameters=defaults)
    # nbformat gives new cells random ids: fixed ones keep the spec (and its version) stable.
    for cell, name in zip(nb.cells, ["parameters", *(["setup"] if setup else []), "task"], strict=True):
        cell["id"] = name
    return json.loads(json.dumps(nb))  # type: ignore[no-any-return]


def _apply_rules(task: Task, opts: dict[str, Any]) -> None:
    action = TaskAction((opts.get("action") or "start").upper())
    for raw in opts.get("on_event", []):
        key, namespace = _event_key(task.name, raw)
        extra = {"value": json_value(opts["value"])} if opts.get("value") is not None else {}
        task.action_on_event_received(action, key, namespace=namespace, **extra)
    for statuses in opts.get("after", []):
        task.action_on_task_status(action, statuses)
    for path in opts.get("condition", []):
        task.action_on_condition(action, condition_from_spec({"type": "custom", "class": path, "params": {}}))


def _schedule(target: Task | Workflow, opts: dict[str, Any]) -> None:
    if opts.get("cron") is not None or opts.get("interval") is not None:
        interval = timedelta(seconds=opts["interval"]) if opts.get("interval") is not None else None
        target.schedule(
            cron=opts.get("cron"),
            interval=interval,
            timezone=opts.get("tz") or "UTC",
            catchup=bool(opts.get("catchup")),
        )


def _task(cell: Cell, setup: str | None) -> Task:
    o = cell.options
    common: dict[str, Any] = {
        "streaming": o["streaming"],
        "max_retries": o["retries"],
        "retry_delay": o["retry_delay"],
        "timeout": o["timeout"],
        "executor": o["executor"],
    }
    if o.get("operator") is not None:  # a task of that operator, its fields from --param (parse_cell checked)
        params = dict(o["param"])
        try:
            fields = operator_class(o["operator"]).fields
        except SpecError:
            fields = {}  # Task(...) names the unknown operator, with the task
        if "cwd" in fields and "cwd" not in params:
            params["cwd"] = cell.base_dir  # relative paths from the notebook's folder, as for cell tasks
        task: Task = operator_task(o["name"], o["operator"], params, **common)
    elif o["notebook"] is not None:
        task = NotebookTask(o["name"], notebook=o["notebook"], parameters=o["param"], **common)
    else:
        nb = cell_notebook(o["param"], setup, cell.body)
        task = NotebookTask(o["name"], notebook=nb, parameters=o["param"], cwd=cell.base_dir, **common)
    _apply_rules(task, o)
    _schedule(task, o)
    return task


def build(cells: Iterable[Cell], *, strict: bool = True) -> Workflow:
    """The workflow of ``cells`` (all of one workflow, in draft order).

    ``strict`` also checks cross-references (rules naming tasks), as a submit
    does; a draft checks each new cell without them, since the task may come
    in a later cell.
    """
    cells = list(cells)
    first = cells[0]
    settings = next((c.options for c in reversed(cells) if c.command == "workflow"), {})
    setup = next((c.body for c in reversed(cells) if c.command == "setup"), None)
    wf = Workflow(
        first.workflow,
        first.namespace,
        max_active_executions=settings.get("max_active"),
        on_max_active=settings.get("on_max_active") or "queue",
    )
    with context.detached():
        for cell in cells:
            if cell.command == "task":
                wf.add_task(_task(cell, setup))
    for cell in cells:
        if cell.command != "rule":
            continue
        task = wf.tasks.get(cell.options["task"])
        if task is not None:
            _apply_rules(task, cell.options)
        elif strict:
            raise UnknownTaskError(f"%{MAGIC} rule {cell.options['task']}: workflow {wf.name!r} has no such task")
    for raw in settings.get("trigger_on", []):
        key, namespace = _event_key(f"workflow {wf.name!r}", raw)
        extra = {"value": json_value(settings["value"])} if settings.get("value") is not None else {}
        wf.trigger_on(EventCondition(key, namespace, **extra))
    _schedule(wf, settings)
    if strict:
        if not wf.tasks:
            raise SpecError(
                f"workflow {wf.name!r} has no tasks yet: add one with %%{MAGIC} task NAME --workflow {wf.name}"
            )
        wf.validate()
    return wf


class Draft:
    """The definitions seen so far; a cell registered again replaces the old one."""

    def __init__(self) -> None:
        self._cells: dict[Key, Cell] = {}

    def add(self, cell: Cell) -> Key:
        """Check ``cell`` against the rest of its workflow, then keep it (nothing changes on error)."""
        cells = dict(self._cells)
        cells[cell.key] = cell
        build(_of(cells.values(), cell.namespace, cell.workflow), strict=False)
        self._cells = cells
        return cell.key

    def discard(self, key: Key) -> None:
        self._cells.pop(key, None)

    def cells(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> list[Cell]:
        return _of(self._cells.values(), namespace, name)

    def names(self) -> list[tuple[str, str]]:
        """(namespace, name) of every drafted workflow, in the order first seen."""
        return list(dict.fromkeys((c.namespace, c.workflow) for c in self._cells.values()))

    def build(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Workflow:
        """The workflow as a submit would send it."""
        cells = self.cells(name, namespace)
        if not cells:
            known = ", ".join(f"{ns}/{n}" for ns, n in self.names()) or "none"
            raise SpecError(f"no workflow {namespace}/{name} is drafted here (drafted: {known})")
        return build(cells)

    def build_all(self) -> list[Workflow]:
        return [self.build(name, ns) for ns, name in self.names()]


def _of(cells: Iterable[Cell], namespace: str, name: str) -> list[Cell]:
    return [c for c in cells if c.namespace == namespace and c.workflow == name]


# -- notebook files ------------------------------------------------------------


def _joined_lines(source: str) -> list[str]:
    """Lines with a trailing backslash joined to the next, as IPython reads magic lines."""
    lines: list[str] = []
    pending = ""
    for line in source.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def cells_of_source(source: str, base_dir: str | Path) -> list[Cell]:
    """The definitions in one code cell's text, without running it."""
    stripped = source.lstrip("\n\r\t ")
    cell_prefix = f"%%{MAGIC}"
    if stripped.startswith(cell_prefix) and stripped[len(cell_prefix) : len(cell_prefix) + 1] in (" ", "\t", "\n", ""):
        first, _, body = stripped.partition("\n")
        return [parse_cell(first[len(cell_prefix) :], body, base_dir)]
    if stripped.startswith("%%"):
        return []  # another cell magic: its body is not Python, so no %aiflow lines
    found = []
    for line in _joined_lines(source):
        words = line.strip().split(None, 2)
        if len(words) >= 2 and words[0] == f"%{MAGIC}" and words[1] in DEFINING:
            found.append(parse_cell(line.strip()[len(MAGIC) + 1 :], None, base_dir))
    return found


def draft_of_notebook(path: str | Path) -> Draft:
    """The draft a notebook file's cells make when run top to bottom (read with nbformat, never run)."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path} does not exist")
    try:
        # Not nbformat.read: it warns about (and would add random) missing cell ids.
        nb = nbformat.convert(nbformat.reader.reads(path.read_text(encoding="utf-8")), 4)
    except Exception as exc:
        raise SpecError(f"{path} is not a valid notebook ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    draft = Draft()
    base = path.resolve().parent
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            for parsed in cells_of_source(str(cell.get("source", "")), base):
                draft.add(parsed)
        except SpecError as exc:
            raise type(exc)(f"{path.name}, cell {index + 1}: {exc}") from None
    return draft


def workflows_from_notebook(path: str | Path) -> list[Workflow]:
    """Every workflow a notebook file defines with ``%%aiflow`` cells, in order."""
    draft = draft_of_notebook(path)
    if not draft.names():
        raise SpecError(f"{Path(path).name} defines no workflow (no %%{MAGIC} task cells)")
    try:
        return draft.build_all()
    except SpecError as exc:
        raise type(exc)(f"{Path(path).name}: {exc}") from None
