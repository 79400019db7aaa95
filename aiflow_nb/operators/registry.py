"""Operators by name: the built-in ones and those of the ``aiflow_nb.operators`` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from aiflow_nb.errors import SpecError, UnknownOperatorError
from aiflow_nb.operators.base import Operator

GROUP = "aiflow_nb.operators"

#: Built in, and found even when the package is not installed (entry points add more).
_BUILTIN = {
    "notebook": "aiflow_nb.operators.builtin:NotebookOperator",
    "python": "aiflow_nb.operators.builtin:PythonOperator",
    "bash": "aiflow_nb.operators.builtin:BashOperator",
    "spark": "aiflow_nb.operators.spark:SparkOperator",
}


def known_operators() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)} | set(_BUILTIN))


def is_builtin(name: str) -> bool:
    return name in ("notebook", "python", "bash")


def operator_class(name: str) -> type[Operator]:
    """The operator ``name``; UnknownOperatorError listing the known ones if there is none."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"an operator is named by a non-empty string, got {name!r}")
    target = _BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group=GROUP):
            if ep.name == name:
                target = ep.value
                break
    if target is None:
        raise UnknownOperatorError(f"unknown operator {name!r}; known: {', '.join(known_operators())}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownOperatorError(f"operator {name!r} ({target}) cannot be loaded: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Operator)):
        raise UnknownOperatorError(f"operator {name!r} ({target}) is not an Operator")
    return cls
