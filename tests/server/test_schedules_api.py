"""Backfill and next run times through the API and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from aiflow_nb import BashTask, Workflow
from aiflow_nb.events import keys
from tests.cli_runner import cli
from tests.conftest import RunningService


def test_backfill_and_next_run_through_the_cli(service: RunningService) -> None:
    client = service.client()
    with Workflow("nightly") as wf:
        BashTask("t", command="true")
    wf.schedule(cron="0 3 * * *", timezone="Europe/Berlin")
    client.submit(wf)

    shown = json.loads(cli(service.home, "workflow", "show", "nightly", "-o", "json").stdout)
    due = datetime.fromisoformat(shown["next_runs"]["(workflow)"])
    assert due > datetime.now(UTC) - timedelta(minutes=1)
    assert due.astimezone(timezone(timedelta(hours=1))).hour in (2, 3)  # 03:00 Berlin, CET or CEST
    table = cli(service.home, "workflow", "show", "nightly")
    assert "next run (workflow):" in table.stdout

    done = cli(
        service.home, "workflow", "backfill", "nightly", "--start", "2026-01-01T00:00", "--end", "2026-01-03T23:00"
    )
    assert "3 due time(s)" in done.stdout
    sent = [e.value for e in client.events(key=keys.SCHEDULE_TICK)]
    assert [v["scheduled_time"] for v in sent] == [
        "2026-01-01T02:00:00+00:00",
        "2026-01-02T02:00:00+00:00",
        "2026-01-03T02:00:00+00:00",
    ]
    assert all(v["backfill"] for v in sent)


def test_a_bad_backfill_is_one_line_and_sends_nothing(service: RunningService) -> None:
    client = service.client()
    with Workflow("nightly") as wf:
        BashTask("t", command="true")
    client.submit(wf.schedule(cron="0 3 * * *"))
    before = client.health()["latest_offset"]
    for args, message in (
        (("--start", "2026-01-02", "--end", "2026-01-01"), "before start"),
        (("--start", "yesterday", "--end", "2026-01-01"), "--start must be an ISO 8601 time"),
        (("--start", "2026-01-01"), "needs --start and --end"),
    ):
        done = cli(service.home, "workflow", "backfill", "nightly", *args, code=1)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert client.health()["latest_offset"] == before
