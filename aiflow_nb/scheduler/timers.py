"""Time as an input: schedule ticks (live, caught up, backfilled), timeouts and retry delays.

Pure functions: every one takes the time it compares with (``now``); none reads a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiflow_nb.errors import InvalidScheduleError
from aiflow_nb.workflow.schedule import Schedule

#: At most this many ticks of one schedule are caught up in one step.
MAX_TICKS_PER_STEP = 1000
#: A backfill sends at most this many ticks.
MAX_BACKFILL = 100_000
#: Missed due times collapse into one: at most this many are skipped over in one step.
MAX_COLLAPSE = 100_000


def first_due(schedule: Schedule, last_tick: datetime | None, since: datetime, now: datetime | None = None) -> datetime:
    """The next due time after the last tick sent, or after ``since`` (the workflow's submit) if none was.

    An interval schedule whose last tick lies ahead of ``now`` (the clock was
    stepped back while the service was down) counts from ``now``: its next
    tick is one interval away, not the length of the step.  A cron schedule
    keeps its last tick, so no due time of the wall clock ticks twice.
    """
    base = last_tick or since
    if now is not None and schedule.interval is not None and base > now:
        base = now
    return schedule.next_after(base)


def due_ticks(schedule: Schedule, due: datetime, now: datetime) -> tuple[list[datetime], datetime]:
    """The due times to tick now, and the one after them.

    Nothing if ``due`` is later than ``now``.  With ``catchup`` one tick per
    missed time, in order (at most :data:`MAX_TICKS_PER_STEP`); else the
    missed times collapse into the latest one.
    """
    if due > now:
        return [], due
    if schedule.catchup:
        ticks = []
        for _ in range(MAX_TICKS_PER_STEP):
            ticks.append(due)
            due = schedule.next_after(due)
            if due > now:
                break
        return ticks, due
    for _ in range(MAX_COLLAPSE):
        following = schedule.next_after(due)
        if following > now:
            break
        due = following
    return [due], schedule.next_after(due)


def check_period(start: datetime, end: datetime) -> None:
    """Refuse a backfill period without time zones, or one that ends before it starts."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidScheduleError("backfill: start and end need a time zone (e.g. 2026-11-27T10:00+00:00)")
    if end < start:
        raise InvalidScheduleError(f"backfill: end {end.isoformat()} is before start {start.isoformat()}")


def backfill_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every due time of ``schedule`` in [start, end]."""
    check_period(start, end)
    times = []
    due = schedule.next_after(start - timedelta(microseconds=1))
    while due <= end:
        times.append(due)
        if len(times) > MAX_BACKFILL:
            raise InvalidScheduleError(f"backfill: more than {MAX_BACKFILL} ticks; use a shorter period")
        due = schedule.next_after(due)
    return times


def is_late(start_time: datetime | None, timeout: float | None, now: datetime) -> bool:
    """A run started at ``start_time`` has passed its ``timeout`` (seconds) at ``now``."""
    return start_time is not None and timeout is not None and now - start_time > timedelta(seconds=timeout)


def retry_time(now: datetime, retry_delay: float) -> datetime:
    """When a run that failed at ``now`` is queued again."""
    return now + timedelta(seconds=retry_delay)


def retry_due(retry_at: datetime | None, now: datetime, retry_delay: float | None = None) -> bool:
    """A retry is due at ``retry_at``, or at once if that lies more than its whole delay ahead of ``now``.

    Only a clock stepped back while the service was down puts it there (a
    retry is recorded one delay after the failure); waiting out the step
    would hold the task for as long as the step.
    """
    if retry_at is None:
        return False
    if retry_at <= now:
        return True
    return retry_delay is not None and retry_at - now > timedelta(seconds=retry_delay)
