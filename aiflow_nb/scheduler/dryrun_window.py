"""A replay's window and outcome mode as typed, checked (pure): offsets, times ago, ISO times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiflow_nb.errors import SpecError

OUTCOMES = ("success", "failed", "recorded")

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_bound(raw: str | None, what: str, now: datetime) -> int | datetime | None:
    """A replay window's bound as typed: an offset (``1234``), a time ago (``30m``, ``24h``, ``7d``) or an ISO time.

    A time without a zone is UTC.  Raises SpecError naming ``what`` on anything else.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return int(raw)
    relative = _RELATIVE.match(raw)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise SpecError(
            f"{what} must be an offset, a time ago like 24h, 30m or 7d, or an ISO 8601 time, got {raw!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def check_window(since: int, until: int, latest: int) -> None:
    if since < 0 or until < 0:
        raise SpecError("replay: offsets are not negative")
    if since > latest or until > latest:
        raise SpecError(f"replay: the window {since}..{until} goes beyond the log's end (offset {latest})")
    if since > until:
        raise SpecError(f"replay: --since ({since}) is after --until ({until})")


def check_outcomes(outcomes: str) -> None:
    if outcomes not in OUTCOMES:
        raise SpecError(f"replay: unknown outcome mode {outcomes!r} (expected one of {', '.join(OUTCOMES)})")
