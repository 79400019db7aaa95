"""A task's notebook as the spec keeps it: read once, validated, with stable cell ids.

A spec embeds its notebook, so the same file must give the same JSON (hence
the same workflow version) each time it is read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from aiflow_nb.errors import InvalidNotebookError, NotebookNotFoundError


def _fill_cell_ids(node: Any) -> None:
    """Give nbformat >= 4.5 cells without an id a stable one.

    nbformat would add random ids (or, with warnings as errors, reject the
    notebook), so the same file would give a new spec, hence a new version,
    each time.
    """
    cells = node.get("cells") if isinstance(node, Mapping) else None
    minor = node.get("nbformat_minor") if isinstance(node, Mapping) else None
    if not isinstance(cells, list) or node.get("nbformat") != 4 or not isinstance(minor, int) or minor < 5:
        return
    taken = {c.get("id") for c in cells if isinstance(c, Mapping)}
    for i, cell in enumerate(cells):
        if isinstance(cell, dict) and "id" not in cell:
            new = f"cell-{i}"
            while new in taken:
                new += "x"
            cell["id"] = new
            taken.add(new)


def load_notebook(task: str, notebook: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A notebook (a path or a dict) as the JSON a spec embeds, validated; errors name ``task``."""
    if isinstance(notebook, Mapping):
        node = nbformat.from_dict(copy.deepcopy(dict(notebook)))
        where = "the embedded notebook"
    else:
        path = Path(notebook)
        if not path.is_file():
            raise NotebookNotFoundError(f"task {task!r}: notebook {str(path)!r} does not exist")
        where = f"notebook {str(path)!r}"
        try:
            # Not nbformat.read: it validates before the cell ids are filled in below.
            node = nbformat.convert(nbformat.reader.reads(path.read_text(encoding="utf-8")), 4)
        except Exception as exc:
            raise InvalidNotebookError(f"task {task!r}: {where} is not a valid notebook ({exc})") from None
    _fill_cell_ids(node)
    try:
        nbformat.validate(node)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidNotebookError(f"task {task!r}: {where} is not a valid notebook ({first})") from None
    return json.loads(nbformat.writes(node))  # type: ignore[no-any-return]
