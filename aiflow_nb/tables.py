"""Text of the faces: the plain-text tables of the CLI and ``%aiflow``, and durations as people read them.

The widgets show durations with :func:`duration_text` too, so a run reads the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiflow_nb.workflow.records import TaskExecution, WorkflowInfo

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


def human_duration(seconds: float) -> str:
    """``33 ms``, ``1.2 s``, ``3 min 4 s``, ``2 h 5 min``: the two largest units that matter."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{int(seconds * 10) / 10:.1f} s"  # truncated, so a count never shows 60.0 s
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


#: Follows the duration of something still running (it counts on).
RUNNING_MARK = "\u2026"


def duration_text(start: datetime | None, end: datetime | None, now: datetime) -> str:
    """How long a run took, or has been running as of ``now`` (marked with an ellipsis); "" if not started."""
    if start is None:
        return ""
    if end is None:
        return human_duration((now - start).total_seconds()) + RUNNING_MARK
    return human_duration((end - start).total_seconds())


def task_row(te: TaskExecution, now: datetime) -> dict[str, Any]:
    """A task execution as its JSON shows it, with the duration as people read it."""
    return {**te.to_dict(), "duration": duration_text(te.start_time, te.end_time, now)}
