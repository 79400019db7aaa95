"""Task kinds and the rules on them.

A task made inside ``with Workflow(...)`` joins that workflow.  A kind is an
operator (:mod:`aiflow_nb.operators`): ``Task(name, operator="spark",
params={...})`` or a subclass of :class:`OperatorTask` naming its operator
makes a task of any registered kind, checked by that operator.  (Task
subclasses of the older ``aiflow_nb.task_kinds`` entry point group still load.)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from aiflow_nb.errors import InvalidNotebookError, SpecError
from aiflow_nb.notebooks import kernel_problem
from aiflow_nb.operators.registry import is_builtin, known_operators, operator_class
from aiflow_nb.workflow import context
from aiflow_nb.workflow.conditions import (
    _UNSET,
    Condition,
    EventCondition,
    TaskStatusCondition,
)
from aiflow_nb.workflow.notebook_snapshot import load_notebook
from aiflow_nb.workflow.rule import Rule
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.status import TaskAction, TaskStatus

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")  # whole names: fullmatch


def check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SpecError(
            f"{what} name {name!r} is not valid: use letters, digits, '_', '.', '-' "
            "(at most 128 characters, not starting with '.' or '-')"
        )
    return name


def _seconds(what: str, value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise SpecError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(seconds)


def optional_text(task: str, field: str, value: Any) -> str | None:
    """``value`` if it is None or a string, else a SpecError naming the task and field."""
    if value is not None and not isinstance(value, str):
        raise SpecError(f"task {task!r}: {field} must be a string, got {value!r}")
    return value


def mapping(task: str, field: str, value: Any) -> dict[str, Any]:
    """``value`` (None: empty) as a JSON-able dict, else a SpecError naming the task and field."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"task {task!r}: {field} must be a mapping of names to values, got {value!r}")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(f"task {task!r}: {field} must be JSON-able") from None
    return dict(value)


class Task:
    """Base of every task kind.

    ``Task(name, operator="x", params={...}, **common)`` makes a task of the operator ``x``
    (an :class:`OperatorTask`, or the built-in class of ``notebook``, ``python``, ``bash``).
    """

    kind: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Task:
        if cls is not Task:
            return super().__new__(cls)
        name = args[0] if args else kwargs.get("name")
        operator = kwargs.get("operator")
        if operator is None:
            raise SpecError(f"task {name!r}: Task(...) needs operator=NAME (known: {', '.join(known_operators())})")
        if isinstance(operator, str) and is_builtin(operator):
            return _BUILTIN[operator].__new__(_BUILTIN[operator])
        return super().__new__(OperatorTask)

    @property
    def kind_name(self) -> str:
        """The task's kind: its operator's name."""
        return self.kind

    def __init__(
        self,
        name: str,
        *,
        operator: str | None = None,
        params: Mapping[str, Any] | None = None,
        streaming: bool = False,
        max_retries: int = 0,
        retry_delay: float | timedelta = 0,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        executor: str | None = None,
    ) -> None:
        """``operator``: the task's kind (an operator's name); ``params``: that operator's fields.

        Both are read by ``Task(...)``, which makes the task of that operator; a kind's own class
        (``NotebookTask``, ``SparkSubmitTask``, ...) takes its fields as arguments of its own.
        """
        self.name = check_name("task", name)
        if operator is not None and operator != self.kind_name:
            raise SpecError(f"task {name!r}: {type(self).__name__} is operator {self.kind_name!r}, not {operator!r}")
        if params is not None:
            raise SpecError(f"task {name!r}: params={{...}} goes with Task(name, operator=NAME, params={{...}})")
        self.streaming = bool(streaming)
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise SpecError(f"task {name!r}: max_retries must be a non-negative integer")
        self.max_retries = max_retries
        self.retry_delay = _seconds(f"task {name!r}: retry_delay", retry_delay) or 0.0
        self.timeout = _seconds(f"task {name!r}: timeout", timeout)
        if self.timeout == 0:
            raise SpecError(f"task {name!r}: timeout must be positive")
        #: A run whose process shows no sign of life for this long is FAILED
        #: (None: the engine's default).
        self.heartbeat_timeout = _seconds(f"task {name!r}: heartbeat_timeout", heartbeat_timeout)
        if self.heartbeat_timeout == 0:
            raise SpecError(f"task {name!r}: heartbeat_timeout must be positive")
        if executor is not None and (not isinstance(executor, str) or not executor.strip()):
            raise SpecError(f"task {name!r}: executor must be the name of an executor, got {executor!r}")
        #: Where its runs go (``"dask"``, say); None: the engine's executor.
        self.executor = executor
        self.rules: list[Rule] = []
        self.schedule_: Schedule | None = None
        workflow = context.current_workflow()
        if workflow is not None:
            workflow.add_task(self)

    # -- rules (AIFlow's names) -----------------------------------------

    def action_on_condition(self, action: TaskAction | str, condition: Condition) -> Task:
        self.rules.append(Rule(action, condition))
        return self

    def action_on_event_received(
        self,
        action: TaskAction | str,
        event_key: str,
        namespace: str | None = None,
        sender: str | None = None,
        value: Any = _UNSET,
    ) -> Task:
        if not isinstance(event_key, str) or not event_key:
            raise SpecError(f"task {self.name!r}: an event rule needs a non-empty event key")
        return self.action_on_condition(action, EventCondition(event_key, namespace, sender, value))

    def action_on_task_status(self, action: TaskAction | str, upstream: Mapping[Any, TaskStatus | str]) -> Task:
        statuses = {getattr(t, "name", t): s for t, s in upstream.items()}
        return self.action_on_condition(action, TaskStatusCondition(statuses))  # type: ignore[arg-type]

    def start_after(self, tasks: Task | str | Iterable[Task | str]) -> Task:
        """Start once every one of ``tasks`` has succeeded."""
        items = [tasks] if isinstance(tasks, (Task, str)) else list(tasks)
        return self.action_on_task_status(TaskAction.START, {getattr(t, "name", t): TaskStatus.SUCCESS for t in items})

    def schedule(
        self,
        cron: str | None = None,
        interval: timedelta | None = None,
        timezone: str = "UTC",
        catchup: bool = False,
    ) -> Task:
        """Start this task on a schedule in every running execution."""
        self.schedule_ = Schedule(cron, interval, timezone, catchup)
        return self

    @property
    def has_start_rule(self) -> bool:
        # A RESTART rule is no START rule: a stream restarted on drift still starts with its execution.
        return self.schedule_ is not None or any(r.action is TaskAction.START for r in self.rules)

    # -- spec ------------------------------------------------------------

    def params_spec(self) -> dict[str, Any]:
        """The kind-specific fields."""
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        spec = {
            "name": self.name,
            "kind": self.kind_name,
            **self.params_spec(),
            "streaming": self.streaming,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "heartbeat_timeout": self.heartbeat_timeout,
            "rules": [r.to_spec() for r in self.rules],
            "schedule": self.schedule_.to_spec() if self.schedule_ else None,
        }
        if self.executor is not None:  # absent otherwise: specs (and versions) from before it stay the same
            spec["executor"] = self.executor
        return spec

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any], **common: Any) -> Task:
        """Build from the kind-specific fields of a spec."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        # Hashable so tasks can key {task: status} maps; equal specs share kind and name.
        return hash((self.kind_name, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class NotebookTask(Task):
    """Run a notebook with papermill.

    The notebook is read (and validated) when the task is made and embedded
    in the spec, so a submitted workflow never depends on the file again.
    It must name its kernel (``metadata.kernelspec``, as Jupyter saves it), or
    the task names one with ``kernel_name`` (papermill's override).
    ``cwd`` is where it runs; it defaults to the notebook's folder.
    """

    kind = "notebook"

    def __init__(
        self,
        name: str,
        notebook: str | Path | Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        kernel_name: str | None = None,
        cwd: str | None = None,
        path: str | None = None,
        **common: Any,
    ) -> None:
        check_name("task", name)
        self.notebook = load_notebook(name, notebook)
        path = optional_text(name, "path", path)
        self.path = path if path is not None else (None if isinstance(notebook, Mapping) else str(notebook))
        cwd = optional_text(name, "cwd", cwd)
        if cwd is None and self.path is not None:
            cwd = str(Path(self.path).resolve().parent)
        self.cwd = cwd
        self.parameters = mapping(name, "parameters", parameters)
        self.kernel_name = optional_text(name, "kernel_name", kernel_name)
        problem = kernel_problem(self.notebook, self.kernel_name)
        if problem is not None:
            where = "the embedded notebook" if self.path is None else f"notebook {self.path!r}"
            raise InvalidNotebookError(f"task {name!r}: {where} {problem}")
        super().__init__(name, **common)

    def params_spec(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "path": self.path,
            "parameters": self.parameters,
            "kernel_name": self.kernel_name,
            "cwd": self.cwd,
        }

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any], **common: Any) -> Task:
        nb = params.get("notebook")
        if not isinstance(nb, Mapping):
            raise SpecError(f"task {name!r}: 'notebook' must be the notebook's JSON")
        return cls(
            name,
            nb,
            params.get("parameters"),
            kernel_name=params.get("kernel_name"),
            cwd=params.get("cwd"),
            path=params.get("path"),
            **common,
        )


class PythonTask(Task):
    """Call ``module:function(**kwargs)`` in its own process.

    If the function has an ``aiflow_event`` parameter it receives the
    triggering event as a dict.  It runs in ``cwd`` (default: the current
    folder when the task is made), which is also put first on ``sys.path`` so
    a module beside the script imports.
    """

    kind = "python"

    def __init__(
        self,
        name: str,
        callable: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        cwd: str | None = None,
        **common: Any,
    ) -> None:
        module, _, func = callable.partition(":") if isinstance(callable, str) else ("", "", "")
        if not module or not func:
            raise SpecError(f"task {name!r}: callable must be 'module:function', got {callable!r}")
        self.callable = callable
        cwd = optional_text(name, "cwd", cwd)
        self.cwd = cwd if cwd is not None else os.getcwd()
        self.kwargs = mapping(name, "kwargs", kwargs)
        super().__init__(name, **common)

    def params_spec(self) -> dict[str, Any]:
        return {"callable": self.callable, "kwargs": self.kwargs, "cwd": self.cwd}

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any], **common: Any) -> Task:
        return cls(
            name,
            params.get("callable"),  # type: ignore[arg-type]
            params.get("kwargs"),
            cwd=params.get("cwd"),
            **common,
        )


class BashTask(Task):
    """Run a shell command.  The triggering event is in ``$AIFLOW_NB_EVENT``."""

    kind = "bash"

    def __init__(self, name: str, command: str, *, cwd: str | None = None, **common: Any) -> None:
        if not isinstance(command, str) or not command.strip():
            raise SpecError(f"task {name!r}: command must be a non-empty string")
        self.command = command
        self.cwd = optional_text(name, "cwd", cwd)
        super().__init__(name, **common)

    def params_spec(self) -> dict[str, Any]:
        return {"command": self.command, "cwd": self.cwd}

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any], **common: Any) -> Task:
        return cls(name, params.get("command"), cwd=params.get("cwd"), **common)  # type: ignore[arg-type]


class OperatorTask(Task):
    """A task of an operator kind: ``Task(name, operator="spark", params={...})``.

    A subclass may name its operator (``operator_name = "spark"``) and take
    the fields as keyword arguments.  The operator checks the fields here, so a
    task it refuses is never made (nor submitted).  In a spec the fields are
    under ``params``.
    """

    #: The operator of a subclass (``Task(operator=...)`` names it otherwise).
    operator_name: ClassVar[str | None] = None

    def __init__(
        self,
        name: str,
        operator: str | None = None,
        params: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> None:
        check_name("task", name)
        operator = operator or type(self).operator_name
        if not isinstance(operator, str) or not operator:
            raise SpecError(f"task {name!r}: an operator task needs operator=NAME")
        if is_builtin(operator):
            raise SpecError(f"task {name!r}: use {_BUILTIN[operator].__name__} (or Task(...)) for {operator!r}")
        self.operator = operator
        try:
            cls = operator_class(operator)
        except SpecError as exc:
            raise type(exc)(f"task {name!r}: {exc}") from None
        self.params = cls.validate(name, mapping(name, "params", params))
        super().__init__(name, **common)

    @property
    def kind_name(self) -> str:
        return self.operator

    def params_spec(self) -> dict[str, Any]:
        return {"params": self.params}

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any], **common: Any) -> Task:
        return OperatorTask(name, operator=params.get("kind"), params=params.get("params"), **common)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, operator={self.operator!r})"


def operator_task(name: str, operator: str, params: Mapping[str, Any] | None = None, **common: Any) -> Task:
    """``Task(name, operator=..., params=..., **common)``, typed: the task of that operator."""
    if isinstance(operator, str) and is_builtin(operator):
        return _BUILTIN[operator](name, **mapping(name, "params", params), **common)
    return OperatorTask(name, operator=operator, params=params, **common)


def _from_task_call(cls: type[Task]) -> None:
    """Let a built-in class take ``Task(name, operator=KIND, params={...})``'s arguments."""
    init = cls.__init__

    def __init__(self: Task, name: str, *args: Any, **kwargs: Any) -> None:
        if "operator" in kwargs:
            operator = kwargs.pop("operator")
            if operator != cls.kind:
                raise SpecError(f"task {name!r}: {cls.__name__} is operator {cls.kind!r}, not {operator!r}")
            fields = mapping(name, "params", kwargs.pop("params", None))
            init(self, name, *args, **fields, **kwargs)
        else:
            init(self, name, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    cls.__init__ = __init__  # type: ignore[method-assign]


_BUILTIN: dict[str, type[Task]] = {t.kind: t for t in (NotebookTask, PythonTask, BashTask)}
for _cls in _BUILTIN.values():
    _from_task_call(_cls)
