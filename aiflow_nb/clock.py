"""The engine's clock: the wall time it started at, advanced by elapsed (monotonic) time.

The system clock can step: an NTP correction, a virtual machine resumed, a
laptop waking. Timeouts, retry delays and interval schedules are lengths of
time, so they go by this clock, which a step does not move: a run is not
timed out by a step forward, and a retry does not wait an extra hour after a
step back. Cron schedules name times of day, so they go by the wall clock
(:meth:`SteadyClock.wall`); their next due time is always after the last
tick, so a step back never ticks a due time twice.

The clock is anchored to the wall clock when the engine starts, so a step
shows in the times the service records (a run's start, an execution's end)
only after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    return datetime.now(UTC)


class SteadyClock:
    """``clock()``: the UTC time at creation plus the monotonic seconds since.

    ``wall`` reads the wall clock (the system's by default).
    """

    def __init__(self, wall: Callable[[], datetime] = utc_now) -> None:
        self._read_wall = wall
        self._wall0 = wall()
        self._mono0 = time.monotonic()

    def __call__(self) -> datetime:
        return self._wall0 + timedelta(seconds=time.monotonic() - self._mono0)

    def wall(self) -> datetime:
        """The wall clock's UTC time, steps and all."""
        return self._read_wall()
