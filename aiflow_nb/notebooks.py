"""Notebooks made from code (the demo's tasks, the cells of ``%%aiflow``), and what a notebook must name to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def code_notebook(*sources: str, parameters: str | None = None) -> Any:
    """A python3 notebook of code cells; ``parameters`` becomes the cell tagged "parameters"."""
    nb = v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC)})
    if parameters is not None:
        nb.cells.append(v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(v4.new_code_cell(s) for s in sources)
    return nb


def write_code_notebook(path: Path, *sources: str, parameters: str | None = None) -> Path:
    """Write :func:`code_notebook` to ``path`` and return the path."""
    nbformat.write(code_notebook(*sources, parameters=parameters), path)
    return path


def kernel_problem(notebook: Any, kernel_name: str | None) -> str | None:
    """Why papermill could not run ``notebook`` (None: it can): it must name its kernel.

    The kernel is the task's ``kernel_name`` (papermill's override) or the notebook's
    ``metadata.kernelspec.name``, which Jupyter writes when a notebook is saved with a kernel.
    """
    if kernel_name:
        return None
    metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
    kernelspec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    if isinstance(kernelspec, dict) and isinstance(kernelspec.get("name"), str) and kernelspec["name"]:
        return None
    return (
        "names no kernel (its metadata has no kernelspec): open it in Jupyter, select a kernel and save it, "
        "or give the task kernel_name='python3'"
    )
