"""Cron and interval schedules for workflows and tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from aiflow_nb.errors import InvalidScheduleError, SpecError


@dataclass(frozen=True)
class Schedule:
    """Either a cron expression in a time zone or a fixed interval.

    >>> s = Schedule(cron="0 * * * *")
    >>> s.next_after(datetime(2026, 1, 1, 10, 30, tzinfo=timezone.utc)).isoformat()
    '2026-01-01T11:00:00+00:00'
    """

    cron: str | None = None
    interval: timedelta | None = None
    timezone: str = "UTC"
    #: After downtime: False sends one tick now for all missed times, True
    #: one tick per missed time, in order.
    catchup: bool = False

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise InvalidScheduleError("a schedule needs exactly one of 'cron' or 'interval'")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidScheduleError(f"timezone {self.timezone!r} does not exist") from None
        if self.cron is not None and (not isinstance(self.cron, str) or not croniter.is_valid(self.cron)):
            raise InvalidScheduleError(f"cron expression {self.cron!r} is not valid")
        if self.interval is not None:
            if not isinstance(self.interval, timedelta):
                raise InvalidScheduleError(f"interval must be a timedelta, got {self.interval!r}")
            if self.interval <= timedelta(0):
                raise InvalidScheduleError(f"interval must be positive, got {self.interval}")
        if not isinstance(self.catchup, bool):
            raise InvalidScheduleError(f"catchup must be true or false, got {self.catchup!r}")
        if self.cron is not None:
            try:
                self.next_after(datetime(2026, 1, 1, tzinfo=UTC))
            except Exception:
                raise InvalidScheduleError(f"cron expression {self.cron!r} never fires") from None

    def next_after(self, after: datetime) -> datetime:
        """The first due time strictly after ``after`` (aware, in UTC)."""
        after = after.astimezone(UTC)
        if self.interval is not None:
            # Intervals are anchored at the Unix epoch so every process
            # agrees on the due times, whenever it started.
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            steps = (after - epoch) // self.interval + 1
            return epoch + steps * self.interval
        assert self.cron is not None
        local = after.astimezone(ZoneInfo(self.timezone))
        due: datetime = croniter(self.cron, local).get_next(datetime)
        return due.astimezone(UTC)

    def to_spec(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "interval": self.interval.total_seconds() if self.interval is not None else None,
            "timezone": self.timezone,
            "catchup": self.catchup,
        }

    @classmethod
    def from_spec(cls, spec: Any) -> Schedule:
        if not isinstance(spec, dict):
            raise SpecError(f"a schedule must be an object, got {spec!r}")
        interval = spec.get("interval")
        if interval is not None and not isinstance(interval, (int, float)):
            raise InvalidScheduleError(f"interval must be a number of seconds, got {interval!r}")
        return cls(
            cron=spec.get("cron"),
            interval=timedelta(seconds=interval) if interval is not None else None,
            timezone=spec.get("timezone") or "UTC",
            catchup=spec.get("catchup", False),
        )
