"""The widgets' HTML: times, durations, statuses, errors, messages, tables and a graph that fits."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiflow_nb.tables import duration_text
from aiflow_nb.workflow.graph import STATUS_COLORS

#: An error longer than this is cut on its row (the whole text is its tooltip).
ERROR_SHOWN = 300
#: Layout of a widget that fits its output area (a narrow split view too): never wider than it.
FIT = {"max_width": "100%"}


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def now() -> datetime:
    return datetime.now(UTC)


def duration(start: datetime | None, end: datetime | None) -> str:
    return duration_text(start, end, now())


def status_html(status: str, error: str | None = None) -> str:
    color = STATUS_COLORS.get(status, "#ffffff")
    title = f' title="{html.escape(error)}"' if error else ""
    return f'<span style="background:{color};padding:0 4px;border-radius:3px"{title}>{html.escape(status)}</span>'


def error_html(text: str | None) -> str:
    if not text:
        return ""
    shown = text if len(text) <= ERROR_SHOWN else text[:ERROR_SHOWN] + "…"
    return (
        f'<span style="color:#b00020;white-space:pre-wrap;overflow-wrap:anywhere" title="{html.escape(text)}">'
        f"{html.escape(shown)}</span>"
    )


def fit_svg(svg: str) -> str:
    """The SVG from its ``<svg`` tag on, scaled down to the width it gets (never up, never clipped)."""
    if "<svg" not in svg:
        return svg
    svg = svg[svg.find("<svg") :]
    return '<svg style="max-width:100%;height:auto"' + svg[len("<svg") :]


def message_html(text: str, error: bool = False) -> str:
    color = "#b00020" if error else "#333333"
    return f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""


def close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


#: Cells of a table: apart from each other; one line each but the last column's (a value wraps).
_CELL = "padding:1px 12px 1px 0;text-align:left;vertical-align:top;white-space:nowrap"
_LAST_CELL = "padding:1px 0;text-align:left;vertical-align:top;overflow-wrap:anywhere"


def html_table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of HTML cells (already escaped)."""
    columns = list(columns)

    def line(tag: str, cells: list[str]) -> str:
        styles = [_CELL] * (len(cells) - 1) + [_LAST_CELL]
        return (
            "<tr>" + "".join(f'<{tag} style="{st}">{c}</{tag}>' for st, c in zip(styles, cells, strict=True)) + "</tr>"
        )

    body = "".join(line("td", list(r)) for r in rows)
    return (
        '<table style="font-family:monospace;font-size:12px;border-collapse:collapse"><thead>'
        + line("th", columns)
        + "</thead><tbody>"
        + body
        + "</tbody></table>"
    )
