"""Parameters given for one run: checked against what the tasks declare, merged into a task's spec.

``aiflow-nb execution start WF -p day=2024-01-01`` (or ``start_execution(..., parameters=...)``)
overrides parameters for that execution only; ``task start ... -p`` for that one run.  A notebook
task declares the names of its cell tagged "parameters" (read the papermill way) and those of its
own ``parameters``; a python task the names of its ``kwargs``.  A name no task declares is refused,
where papermill would only warn.  Pure functions on task specs (dicts), no I/O.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiflow_nb.errors import InvalidParameterError, UnknownParameterError

log = logging.getLogger(__name__)

#: Where each task kind takes its parameters in its spec (papermill's parameters, a function's kwargs).
PARAMETER_FIELD = {"notebook": "parameters", "python": "kwargs"}


def checked(parameters: Any) -> dict[str, Any] | None:
    """``parameters`` as a dict of names to JSON values (None if empty), else InvalidParameterError."""
    if parameters is None:
        return None
    if not isinstance(parameters, Mapping):
        raise InvalidParameterError(f"parameters must be a mapping of names to values, got {parameters!r}")
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidParameterError(f"parameter name {name!r} is not a valid identifier")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"parameter {name!r}: its value must be JSON, got {value!r}") from None
    return dict(parameters) or None


def from_assignments(items: Iterable[str], flag: str = "-p") -> dict[str, Any] | None:
    """``NAME=VALUE`` texts (a CLI's or a magic's ``-p``) as parameters, each value typed as papermill's ``-p``."""
    from aiflow_nb.workflow.cell_syntax import typed_value  # the model's parser: only when there are items

    found: dict[str, Any] = {}
    for raw in items:
        name, eq, value = raw.partition("=")
        if not eq or not name.isidentifier():
            raise InvalidParameterError(f"{flag} needs NAME=VALUE with a Python name, got {raw!r}")
        found[name] = typed_value(value)
    return found or None


def _cell_names(notebook: Mapping[str, Any]) -> set[str]:
    """The names the notebook's cell tagged "parameters" assigns, as papermill's translator reads them."""
    cells = notebook.get("cells") or []
    cell = next((c for c in cells if "parameters" in (c.get("metadata") or {}).get("tags", [])), None)
    if cell is None:
        return set()
    import nbformat
    from papermill.exceptions import PapermillException
    from papermill.translators import papermill_translators  # heavy: only when overrides are given

    metadata = notebook.get("metadata") or {}
    kernel = (metadata.get("kernelspec") or {}).get("name") or "python3"
    language = (metadata.get("kernelspec") or {}).get("language") or (metadata.get("language_info") or {}).get("name")
    try:
        translator = papermill_translators.find_translator(kernel, language or "python")
        source = cell.get("source") or ""
        node = nbformat.from_dict({"source": "".join(source) if isinstance(source, list) else source})
        found = translator.inspect(node)
    except (PapermillException, NotImplementedError, ValueError, SyntaxError):
        log.debug("cannot read the parameters cell of a %s notebook", language)
        return set()
    return {p.name for p in found}


def declared(task_spec: Mapping[str, Any]) -> set[str]:
    """The parameter names a task (its spec) takes; empty for a kind that takes none."""
    field = PARAMETER_FIELD.get(str(task_spec.get("kind")))
    if field is None:
        return set()
    names = set(task_spec.get(field) or {})
    if field == "parameters" and isinstance(task_spec.get("notebook"), Mapping):
        names |= _cell_names(task_spec["notebook"])
    return names


def check_declared(parameters: Mapping[str, Any], task_specs: Iterable[Mapping[str, Any]], where: str) -> None:
    """Refuse a parameter that none of ``task_specs`` declares (UnknownParameterError naming it)."""
    known: set[str] = set()
    for spec in task_specs:
        known |= declared(spec)
    unknown = sorted(set(parameters) - known)
    if unknown:
        declared_text = ", ".join(sorted(known)) or "none"
        raise UnknownParameterError(
            f"{where} declares no parameter {unknown[0]!r} (declared: {declared_text})", unknown[0]
        )


def with_overrides(task_spec: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task's spec with the overrides it declares merged over its own parameters (a new dict)."""
    if not overrides:
        return task_spec
    field = PARAMETER_FIELD.get(str(task_spec.get("kind")))
    if field is None:
        return task_spec
    names = declared(task_spec)
    taken = {k: v for k, v in overrides.items() if k in names}
    if not taken:
        return task_spec
    return {**task_spec, field: {**(task_spec.get(field) or {}), **taken}}
