"""Notebooks made from code: the demo's tasks, and later the cells of ``%%aiflow``."""

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
