"""The operator contract: how one kind of job is described, started, watched, stopped and found again.

An operator is a class with a unique ``name`` (the task kind).  Its spec side
(``fields`` and :meth:`Operator.validate`) runs where a workflow is made and
again where it is submitted; its run side (``start``, ``poll``, ``wait``,
``stop``, ``reattach``) runs in the run's own runner process, wherever the
executor put it.  The handle ``start`` returns is JSON, written to the run
folder before anything else happens, so a later runner can find the job again
after the first one (or the service) died.

Operators register through the ``aiflow_nb.operators`` entry point group::

    [project.entry-points."aiflow_nb.operators"]
    sleeper = "my_package.ops:SleeperOperator"
"""

from __future__ import annotations

import enum
import importlib.util
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aiflow_nb.errors import OperatorUnavailableError, SpecError

#: What ``start`` returns and ``poll``/``stop``/``reattach`` take: a JSON object.
Handle = dict[str, Any]


class JobFailed(Exception):
    """The job ran (or tried to start) and failed; the message is the run's recorded error."""


class JobState(str, enum.Enum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass(frozen=True)
class JobStatus:
    """What ``poll`` saw: RUNNING, SUCCESS, or FAILED with its error."""

    state: JobState
    error: str | None = None

    @classmethod
    def running(cls) -> JobStatus:
        return cls(JobState.RUNNING)

    @classmethod
    def success(cls) -> JobStatus:
        return cls(JobState.SUCCESS)

    @classmethod
    def failed(cls, error: str) -> JobStatus:
        return cls(JobState.FAILED, error)

    @property
    def ended(self) -> bool:
        return self.state is not JobState.RUNNING


@dataclass(frozen=True)
class Field:
    """One spec field of an operator: its JSON type(s), whether it must be given, its default."""

    types: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass
class OperatorContext:
    """What a started job may use: its parameters, the triggering event, its run folder and environment."""

    task: str
    params: dict[str, Any]
    run_dir: Path
    event: dict[str, Any] | None
    #: The ``AIFLOW_NB_*`` variables a job passes on, so that code in it can send events scoped to its run.
    environment: dict[str, str]
    streaming: bool = False
    #: The whole launch request (the built-in kinds read the task's spec from it).
    request: dict[str, Any] = field(default_factory=dict)
    #: Set when aiflow-nb asks the run to stop (a STOP, a RESTART, a timeout).
    stop_event: threading.Event = field(default_factory=threading.Event)
    #: A started kernel the kernel-pool executor lends a notebook run (None elsewhere).
    kernel: Any = None

    @property
    def log_path(self) -> Path:
        """The run's log (what the job writes there is shown as the run's log, tokens redacted)."""
        return self.run_dir / "log.txt"

    def log(self, message: str) -> None:
        """One line in the run's log."""
        print(f"aiflow-nb: {message}", flush=True)

    def stop_requested(self) -> bool:
        return self.stop_event.is_set() or (self.run_dir / "stop").exists()


class Operator(ABC):
    """Base class of every task kind (see the module doc and docs/semantics.md)."""

    #: The kind's name: ``Task(operator=name)``, ``kind`` in a spec, the entry point's name.
    name: ClassVar[str] = ""
    #: The spec fields it accepts; anything else is refused.
    fields: ClassVar[Mapping[str, Field]] = {}
    #: The optional extra that brings what it needs (``spark``: ``pip install 'aiflow-nb[spark]'``).
    extra: ClassVar[str | None] = None
    #: Modules the extra installs; one missing refuses the task, naming the extra.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Seconds between two polls in :meth:`wait`.
    poll_interval: ClassVar[float] = 0.5
    #: True: the job runs inside the runner process and ends with it (nothing to re-attach).
    in_process: ClassVar[bool] = False

    # -- spec side --------------------------------------------------------

    @classmethod
    def validate(cls, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The task's fields, checked and completed with defaults; SpecError naming what is wrong."""
        cls.check_available()
        unknown = sorted(set(params) - set(cls.fields))
        if unknown:
            known = ", ".join(sorted(cls.fields)) or "none"
            refused = ", ".join(map(repr, unknown))
            raise SpecError(f"task {task!r}: operator {cls.name!r} does not take {refused} (it takes: {known})")
        checked: dict[str, Any] = {}
        for key, spec in cls.fields.items():
            value = params.get(key, spec.default)
            if value is None:
                if spec.required:
                    raise SpecError(f"task {task!r}: operator {cls.name!r} needs {key!r}")
                checked[key] = None
                continue
            types = spec.types if isinstance(spec.types, tuple) else (spec.types,)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                wanted = " or ".join(t.__name__ for t in types)
                raise SpecError(f"task {task!r}: {key!r} of operator {cls.name!r} must be {wanted}, got {value!r}")
            checked[key] = value
        try:
            json.dumps(checked, allow_nan=False)
        except (TypeError, ValueError):
            raise SpecError(f"task {task!r}: the fields of operator {cls.name!r} must be JSON-able") from None
        cls.check(task, checked)
        return checked

    @classmethod
    def check(cls, task: str, params: dict[str, Any]) -> None:
        """More checks across fields (raise SpecError); ``params`` has every field."""
        return None

    @classmethod
    def check_available(cls) -> None:
        """OperatorUnavailableError naming the extra when a module it needs is not installed."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            how = f"pip install 'aiflow-nb[{cls.extra}]'" if cls.extra else f"install {', '.join(missing)}"
            raise OperatorUnavailableError(f"operator {cls.name!r} needs {', '.join(missing)}: {how}")

    # -- run side ---------------------------------------------------------

    @abstractmethod
    def start(self, context: OperatorContext) -> Handle:
        """Start the job; return what finds it again (pids, ids, paths).

        Raise :class:`JobFailed` if it cannot start: the run is FAILED with that error.
        """

    @abstractmethod
    def poll(self, handle: Handle) -> JobStatus:
        """The job's state now (cheap; called every ``poll_interval``)."""

    @abstractmethod
    def stop(self, handle: Handle) -> None:
        """Ask the job to end, and make sure it does (escalate if it does not listen)."""

    def reattach(self, handle: Handle) -> bool:
        """Called in a new runner when the old one died with the job unfinished (a service restart,
        a killed worker).  True: the job is there to watch again (or ended, and ``poll`` says how);
        False: it is lost, and the run is FAILED."""
        return True

    def wait(self, handle: Handle, context: OperatorContext) -> JobStatus:
        """Poll until the job ends; on a stop request, call ``stop`` once and go on polling."""
        stopping = False
        while True:
            status = self.poll(handle)
            if status.ended:
                return status
            if not stopping and context.stop_requested():
                stopping = True
                context.log(f"stopping the {self.name} job")
                self.stop(handle)
                continue
            context.stop_event.wait(self.poll_interval)
