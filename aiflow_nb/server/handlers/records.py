"""Stored records as the API answers them: one record that cannot be encoded never fails a listing.

A value stored before nesting was bounded (``MAX_VALUE_DEPTH``) may be too
deep to turn into JSON.  Such a record is answered with every field it has,
its event value (and context) replaced by :data:`UNSHOWN`, and a log line
naming it; the rest of the listing is as always.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from aiflow_nb.events.event import MAX_VALUE_DEPTH, Event
from aiflow_nb.server.handlers.base import encode_json

log = logging.getLogger("aiflow_nb.server.api")

#: What a listing shows in place of a stored value too deep to encode.
UNSHOWN = f"(not shown: nested deeper than {MAX_VALUE_DEPTH} levels)"


def as_dict(record: Any) -> dict[str, Any]:
    """``record.to_dict()``, encodable as JSON; a value that is not is replaced by :data:`UNSHOWN`."""
    try:
        data: dict[str, Any] = record.to_dict()
        encode_json(data)
    except RecursionError:
        name = getattr(record, "id", None) or getattr(record, "offset", None) or getattr(record, "name", "")
        log.warning("%s %s holds a value too deeply nested to encode; answered without it", type(record).__name__, name)
        shown: dict[str, Any] = _without_values(record).to_dict()
        return shown
    return data


def listing(field: str, records: Iterable[Any]) -> bytes:
    """The JSON body ``{field: [record, ...]}``: encoded at once, record by record only if that fails."""
    records = list(records)
    try:
        return encode_json({field: [record.to_dict() for record in records]})
    except RecursionError:
        return encode_json({field: [as_dict(record) for record in records]})


def _without_values(record: Any) -> Any:
    if isinstance(record, Event):
        return dataclasses.replace(record, value=UNSHOWN, context=_flat(record.context))
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if field.name == "event" and isinstance(value, dict):
            changes["event"] = {k: UNSHOWN if isinstance(v, (dict, list)) else v for k, v in value.items()}
        elif field.name == "latest_execution" and value is not None:
            changes["latest_execution"] = _without_values(value)
    return dataclasses.replace(record, **changes)


def _flat(context: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if context is None else {k: UNSHOWN if isinstance(v, (dict, list)) else v for k, v in context.items()}
