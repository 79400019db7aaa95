"""Plain-text tables of the CLI and of ``%aiflow status`` (one look for both)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiflow_nb.workflow.records import WorkflowInfo

WORKFLOW_COLUMNS = ("namespace", "name", "version", "paused", "latest")


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns under an upper-case header; "(none)" for no rows."""
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def workflow_row(info: WorkflowInfo) -> dict[str, Any]:
    """A workflow as its JSON shows it, plus a short "latest" execution column."""
    latest = info.latest_execution
    return {**info.to_dict(), "latest": f"#{latest.id} {latest.status.value}" if latest else None}
