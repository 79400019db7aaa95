"""Events read from NDJSON text (one JSON object a line), as ``aiflow-nb event send --file`` reads them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event, check_name, check_sent, encode


def read_events(lines: Iterable[str], name: str) -> tuple[list[Event], list[str | None]]:
    """The events of ``lines`` and their idempotency keys, checked as the log checks them.

    Blank lines are skipped; a mistake raises :class:`InvalidEventError` (or
    ``EventTooLargeError``) naming ``name`` and the line, before anything is sent.

    >>> read_events(['{"key": "row", "value": 1}', "", '{"key": "row", "idempotency_key": "r2"}'], "rows")[1]
    [None, 'r2']
    """
    events: list[Event] = []
    keys: list[str | None] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        data = loads_line(line, where)
        try:
            check_sent(data)
            get = data.get
            namespace, sender, context = get("namespace", DEFAULT_NAMESPACE), get("sender"), get("context")
            event = Event(get("key"), get("value"), namespace, sender, context)  # encode checks it
            encode(event)
            check_name("idempotency key", get("idempotency_key"), optional=True)
        except InvalidEventError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        events.append(event)
        keys.append(get("idempotency_key"))
    if not events:
        raise InvalidEventError(f"{name} holds no events (one JSON object a line)")
    return events, keys


def loads_line(line: str, where: str) -> Any:
    """One line's JSON; a mistake is an :class:`InvalidEventError` starting with ``where``.

    >>> loads_line('{"key": }', "line 3")
    Traceback (most recent call last):
    ...
    aiflow_nb.errors.InvalidEventError: line 3, column 9: not valid JSON (Expecting value)
    """
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"{where}, column {exc.colno}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # a number past Python's 4,300 digits
        raise InvalidEventError(f"{where}: not valid JSON here ({str(exc).split(';')[0]})") from None
    except RecursionError:
        raise InvalidEventError(f"{where}: nested too deeply") from None
