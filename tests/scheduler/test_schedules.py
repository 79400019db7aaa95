"""Schedules on an injected clock: DST, catch-up after downtime, backfill, next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import InvalidScheduleError, SpecError
from aiflow_nb.events import keys
from tests.scheduler.fake_clock import FakeClock
from tests.scheduler.tasks import settle, wait_run

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")


def scheduled(cron: str | None = None, interval: timedelta | None = None, tz: str = "UTC", catchup: bool = False):
    with Workflow("sched") as wf:
        BashTask("t", command="true")
    return wf.schedule(cron=cron, interval=interval, timezone=tz, catchup=catchup)


def ticks(engine: Engine) -> list[str]:
    return [e.value["scheduled_time"] for e in engine.events(key=keys.SCHEDULE_TICK)]


def run_until(engine: Engine, clock: FakeClock, end: datetime, step: timedelta) -> None:
    """Move the clock to ``end`` in steps, letting the engine act at each."""
    while clock.now < end:
        clock.advance(step)
        settle(engine)


def test_an_hourly_cron_ticks_every_real_hour_across_the_autumn_dst_change(home: Path) -> None:
    clock = FakeClock(datetime(2026, 10, 24, 22, 30, tzinfo=UTC))  # 00:30 CEST
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(scheduled(cron="0 * * * *", tz="Europe/Berlin"))
        run_until(engine, clock, datetime(2026, 10, 25, 3, 30, tzinfo=UTC), timedelta(minutes=10))
        local = [datetime.fromisoformat(t).astimezone(BERLIN).strftime("%H:%M%z") for t in ticks(engine)]
        # 02:00 happens twice (CEST, then CET): both are real hours and both tick.
        assert local == ["01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100", "04:00+0100"]


def test_a_daily_cron_keeps_its_local_time_across_the_spring_dst_change(home: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(scheduled(cron="0 9 * * *", tz="America/New_York"))
        run_until(engine, clock, datetime(2026, 3, 9, 15, 0, tzinfo=UTC), timedelta(hours=6))
        assert ticks(engine) == [
            "2026-03-06T14:00:00+00:00",  # 09:00 EST
            "2026-03-07T14:00:00+00:00",
            "2026-03-08T13:00:00+00:00",  # 09:00 EDT
            "2026-03-09T13:00:00+00:00",
        ]
        engine.wait_for(lambda: len(engine.executions(workflow="sched")) == 4)


@pytest.mark.parametrize(("catchup", "expected"), [(False, 1), (True, 5)])
def test_ticks_missed_while_the_engine_was_down(home: Path, catchup: bool, expected: int) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(scheduled(interval=timedelta(minutes=1), catchup=catchup))
        clock.now = datetime(2026, 1, 1, 12, 1, 5, tzinfo=UTC)
        settle(engine)
        assert ticks(engine) == ["2026-01-01T12:01:00+00:00"]
    # Down from 12:01:05 to 12:06:30: due at 12:02, 12:03, 12:04, 12:05, 12:06.
    clock.now = datetime(2026, 1, 1, 12, 6, 30, tzinfo=UTC)
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        settle(engine)
        missed = ticks(engine)[1:]
        assert len(missed) == expected
        if catchup:
            assert missed == [f"2026-01-01T12:0{m}:00+00:00" for m in range(2, 7)]
        else:
            assert missed == ["2026-01-01T12:06:00+00:00"]
        engine.wait_for(lambda: len(engine.executions(workflow="sched", status="SUCCESS")) == 1 + expected)
        clock.now = datetime(2026, 1, 1, 12, 7, 0, tzinfo=UTC)
        settle(engine)
        assert ticks(engine)[-1] == "2026-01-01T12:07:00+00:00"


def test_backfill_sends_the_ticks_of_a_period_once(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(scheduled(cron="0 */6 * * *"))
        start, end = datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
        assert engine.backfill("sched", start, end) == 4
        settle(engine)
        backfilled = [e.value for e in engine.events(key=keys.SCHEDULE_TICK) if e.value["backfill"]]
        assert [v["scheduled_time"][11:16] for v in backfilled] == ["00:00", "06:00", "12:00", "18:00"]
        # Again, overlapping: the due times already sent are not sent twice.
        assert engine.backfill("sched", start, end + timedelta(hours=6)) == 5
        settle(engine)
        assert sorted(ticks(engine)) == sorted({*ticks(engine)})
        assert len(ticks(engine)) == 5
        engine.wait_for(lambda: len(engine.executions(workflow="sched", status="SUCCESS")) == 5)


def test_next_run_is_shown_and_follows_the_ticks(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        wf = scheduled(cron="*/15 * * * *")
        wf.task("t").schedule(interval=timedelta(minutes=5))
        engine.submit(wf)
        assert engine.next_runs("sched") == {
            "": datetime(2026, 1, 1, 12, 15, tzinfo=UTC),
            "t": datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
        }
        clock.now = datetime(2026, 1, 1, 12, 16, tzinfo=UTC)
        settle(engine)
        assert engine.next_runs("sched")[""] == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def test_a_task_on_an_interval_keeps_its_execution_running_and_runs_each_tick(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        with Workflow("poll") as wf:
            BashTask("poll", command="true").schedule(interval=timedelta(minutes=5))
        engine.submit(wf)
        ex = engine.start_execution("poll")
        for seq in (1, 2, 3):
            clock.advance(timedelta(minutes=5))
            wait_run(engine, ex, "poll", TaskStatus.SUCCESS, seq=seq)
            settle(engine)
            # Its schedule will run it again: the execution is not done.
            assert engine.execution(ex).status is WorkflowStatus.RUNNING
        engine.stop_execution(ex)
        assert engine.execution(ex).status is WorkflowStatus.STOPPED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": "61 * * * *"}, "not valid"),
        ({"interval": timedelta(0)}, "interval must be positive"),
        ({"interval": timedelta(seconds=-5)}, "interval must be positive"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
def test_bad_schedules_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="true")
    with pytest.raises(InvalidScheduleError, match=message):
        wf.schedule(**kwargs)  # type: ignore[arg-type]


def test_a_bad_backfill_names_the_problem_and_sends_nothing(engine: Engine) -> None:
    engine.submit(scheduled(cron="0 * * * *"))
    with Workflow("plain") as plain:
        BashTask("t", command="true")
    engine.submit(plain)
    start = datetime(2026, 1, 2, tzinfo=UTC)
    before = engine.log.latest_offset()
    with pytest.raises(InvalidScheduleError, match="before start"):
        engine.backfill("sched", start, start - timedelta(hours=1))
    with pytest.raises(InvalidScheduleError, match="time zone"):
        engine.backfill("sched", start.replace(tzinfo=None), start)
    with pytest.raises(SpecError, match="no schedule"):
        engine.backfill("plain", start, start)
    assert engine.log.latest_offset() == before
