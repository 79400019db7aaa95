"""Exceptions raised by aiflow-nb.

Every user mistake raises a subclass of :class:`AiflowError` whose message
names what was wrong, so callers (CLI, magics, HTTP API) can show it in one
line.  The ``code`` attribute is a stable, machine-readable name.
"""

from __future__ import annotations

import errno
import os


class AiflowError(Exception):
    """Base class of every error aiflow-nb raises on purpose."""

    code = "aiflow_error"


class SpecError(AiflowError, ValueError):
    """A workflow spec is malformed (missing field, wrong type, bad name)."""

    code = "invalid_spec"


class UnknownTaskError(SpecError):
    """A rule names a task that is not in the workflow."""

    code = "unknown_task"


class ConditionImportError(SpecError):
    """A custom condition's import path cannot be imported."""

    code = "unknown_condition"


class NotebookNotFoundError(SpecError, FileNotFoundError):
    """A notebook task names a file that does not exist."""

    code = "notebook_not_found"


class InvalidNotebookError(SpecError):
    """A notebook task names a file that is not a valid notebook."""

    code = "invalid_notebook"


class UnknownOperatorError(SpecError):
    """A task names an operator that no ``aiflow_nb.operators`` entry point provides."""

    code = "unknown_operator"


class OperatorUnavailableError(SpecError):
    """An operator's optional extra is not installed (the message names the extra)."""

    code = "operator_unavailable"


class InvalidScheduleError(SpecError):
    """A cron expression, time zone or interval is not valid."""

    code = "invalid_schedule"


class InvalidParameterError(AiflowError, ValueError):
    """A run's parameter overrides are malformed: not a mapping, a bad name, a value that is not JSON."""

    code = "invalid_parameter"


class UnknownParameterError(InvalidParameterError):
    """A run's parameter override names a parameter its task(s) do not declare (``parameter`` names it)."""

    code = "unknown_parameter"

    def __init__(self, message: str, parameter: str = "") -> None:
        super().__init__(message)
        self.parameter = parameter


class InvalidEventError(AiflowError, ValueError):
    """An event is malformed: empty key, value not JSON-able, bad field."""

    code = "invalid_event"


class EventTooLargeError(InvalidEventError):
    """An event's encoded value is larger than the documented limit."""

    code = "event_too_large"


class ValueTooDeepError(InvalidEventError):
    """An event's value (or context) is nested deeper than the log keeps."""

    code = "value_too_deep"


class IdempotencyKeyReusedError(InvalidEventError):
    """An idempotency key sent again with other events: another number of them, or other content."""

    code = "idempotency_key_reused"


class NotFoundError(AiflowError, LookupError):
    """A workflow, execution or task execution does not exist."""

    code = "not_found"


class ForbiddenError(AiflowError, PermissionError):
    """A run's file leads outside the home (a task left a link there): it is not served."""

    code = "forbidden"


class IllegalTransitionError(AiflowError):
    """A status change that the transition table does not allow."""

    code = "illegal_transition"


class LimitReachedError(AiflowError):
    """A workflow already runs its ``max_active_executions``."""

    code = "limit_reached"


class ExecutorError(AiflowError):
    """An executor is unknown or cannot launch a task."""

    code = "executor_error"


class StorageError(AiflowError):
    """The home's database cannot be used: damaged, in use, or not writable."""

    code = "storage_error"


class StorageFullError(StorageError):
    """The home's file system has no room left (or the user's quota is used up): nothing was written."""

    code = "storage_full"


#: The ``errno`` values of a write that failed for want of room.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_space(exc: BaseException) -> str | None:
    """Why ``exc`` is a write that found no room (``"No space left on device"``), or None if it is not.

    An ``OSError`` says so by its errno; DuckDB only in its message, which holds the C library's text.
    """
    if isinstance(exc, OSError):
        return (exc.strerror or os.strerror(exc.errno)) if exc.errno in NO_SPACE_ERRNOS else None
    text = str(exc)
    return next((os.strerror(n) for n in sorted(NO_SPACE_ERRNOS) if os.strerror(n) in text), None)


class ServiceUnavailableError(AiflowError, ConnectionError):
    """No service runs for the home, or it does not answer."""

    code = "service_unavailable"


class UnauthorizedError(AiflowError, PermissionError):
    """The service refused the token."""

    code = "unauthorized"


def error_class(code: str) -> type[AiflowError]:
    """The error class with this ``code`` (AiflowError if none has it)."""
    stack: list[type[AiflowError]] = [AiflowError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return AiflowError
