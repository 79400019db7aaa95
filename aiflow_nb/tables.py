"""Plain-text tables of the CLI and of ``%aiflow status`` (one look for both)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiflow_nb.workflow.records import WorkflowInfo

WORKFLOW_COLUMNS = ("namespace", "name", "version", "paused", "latest")

#: What a terminal would act on rather than show: C0 and C1 controls (ESC, CR, LF, BS...), DEL,
#: the Unicode line and paragraph separators, and the bidirectional overrides and isolates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character written as an escape (``\\x1b``, ``\\n``).

    Keys, values and error texts come from whoever sent them: shown raw, an
    escape sequence could set the terminal's title, clear the screen, or a
    newline forge a row of the table.
    """
    return _UNPRINTABLE.sub(_escape, str(value))


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns under an upper-case header; "(none)" for no rows."""
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else printable(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def text_fields(fields: Mapping[str, Any]) -> str:
    """One ``name: value`` line per field, values escaped as in a table."""
    return "\n".join(f"{printable(k)}: {printable(v)}" for k, v in fields.items())


def workflow_row(info: WorkflowInfo) -> dict[str, Any]:
    """A workflow as its JSON shows it, plus a short "latest" execution column."""
    latest = info.latest_execution
    return {**info.to_dict(), "latest": f"#{latest.id} {latest.status.value}" if latest else None}
