"""A replay (a dry run) as HTML for the notebook: a table of the would-be runs and a timeline."""

from __future__ import annotations

import html
from typing import Any

from aiflow_nb.workflow.graph import STATUS_COLORS


def replay_html(result: Any) -> str:
    """A replay (:class:`aiflow_nb.scheduler.dryrun.Replay`) as HTML: a table of the would-be runs and a timeline.

    The timeline has a row per task and a bar per run, placed by the offset of the event that caused it over
    the window (a run made by a command sits just after the item before it); no plotting library.
    """
    since, until = result.since, result.until
    span = max(until - since, 1)
    runs = [i for i in result.items if i["kind"] == "run"]
    tasks = sorted({i["task"] for i in runs})
    width, row, label = 600, 18, 120
    bars, place = [], 0.0
    for item in result.items:
        if item.get("offset"):
            place = min(max((item["offset"] - since) / span, 0.0), 1.0)
        if item["kind"] != "run":
            continue
        x = label + place * (width - label - 6)
        y = tasks.index(item["task"]) * row
        color = STATUS_COLORS.get(item["status"], "#999")
        title = html.escape(f"{item['task']} #{item['seq']} {item['status']}: {item['cause']}")
        bars.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="6" height="{row - 6}" fill="{color}"><title>{title}</title></rect>'
        )
    names = "".join(
        f'<text x="0" y="{n * row + row - 5}" font-size="12">{html.escape(task)}</text>' for n, task in enumerate(tasks)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{max(len(tasks), 1) * row + 14}">'
        f'{names}{"".join(bars)}<text x="{label}" y="{max(len(tasks), 1) * row + 12}" font-size="10">'
        f'offset {since}</text><text x="{width - 60}" y="{max(len(tasks), 1) * row + 12}" font-size="10">'
        f"offset {until}</text></svg>"
    )
    head = "".join(f"<th>{h}</th>" for h in ("kind", "id", "task", "status", "cause", "event"))
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                i["kind"], i["id"], f"{i['task']} #{i['seq']}" if i["kind"] == "run" else "", i["status"],
                i["cause"], f"{i['offset']} {i['key']}" if i.get("offset") else "",
            )
        )
        + "</tr>"
        for i in result.items
    )  # fmt: skip
    lines = "".join(f"<div>{html.escape(text)}</div>" for text in result.lines()[len(result.items) :])
    return f"<div class='aiflow-replay'>{svg}<table><tr>{head}</tr>{body}</table>{lines}</div>"
