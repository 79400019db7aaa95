"""Operators: how a kind of job starts, is polled, stops and is found again (see :mod:`.base`)."""

from aiflow_nb.operators.base import (
    Field,
    Handle,
    JobFailed,
    JobState,
    JobStatus,
    Operator,
    OperatorContext,
)
from aiflow_nb.operators.registry import known_operators, operator_class

__all__ = [
    "Field",
    "Handle",
    "JobFailed",
    "JobState",
    "JobStatus",
    "Operator",
    "OperatorContext",
    "known_operators",
    "operator_class",
]
