"""The grammar of ``%%aiflow`` definitions: one magic line (and body) to a :class:`Cell`.

Only what can be seen from the line alone is checked here; how cells make a
workflow is :mod:`aiflow_nb.workflow.cells`.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from aiflow_nb.errors import SpecError
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.workflow.status import TaskStatus

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
        event_key(where, k)
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


def event_key(where: str, raw: str) -> tuple[str, str | None]:
    """(key, namespace) of ``KEY`` or ``KEY@NAMESPACE``; ``where`` names the definition in errors."""
    key, at, namespace = raw.rpartition("@")
    if not at:
        return raw, None
    if not key or not namespace:
        raise SpecError(f"{where}: expected KEY or KEY@NAMESPACE, got {raw!r}")
    return key, namespace
