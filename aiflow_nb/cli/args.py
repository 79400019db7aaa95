"""Values read from the command line, each wrong one a one-line error naming it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiflow_nb import errors


def value(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def bound(raw: str | None, what: str) -> int | datetime | None:
    """A replay window's bound: an offset, a time ago (24h, 30m, 7d) or an ISO 8601 time."""
    from aiflow_nb.scheduler import dryrun  # only a replay needs it

    return dryrun.parse_bound(raw, what, datetime.now(UTC))


def time_arg(raw: str, what: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise errors.InvalidScheduleError(
            f"{what} must be an ISO 8601 time like 2026-11-27T10:00, got {raw!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def number(raw: str, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise errors.AiflowError(f"{what} must be a number, got {raw!r}") from None
