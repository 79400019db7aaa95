"""POST/GET /api/v1/events."""

from __future__ import annotations

from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE, Event
from aiflow_nb.events.event import check_name, encode
from aiflow_nb.server.handlers.base import ApiError, BaseHandler

MAX_READ = 10_000


#: The fields a client may send (``offset`` and ``create_time`` are the log's).
FIELDS = frozenset({"key", "value", "namespace", "sender", "context", "idempotency_key"})


def parse_event(data: Any) -> tuple[Event, str | None]:
    """An event and its idempotency key from a request's JSON.

    Only the shape is checked here; the log validates the names and values
    when it appends (a bad request then fails alone, see ``GroupCommit``).
    """
    if not isinstance(data, dict):
        raise InvalidEventError("an event must be a JSON object with at least a 'key'")
    if not data.keys() <= FIELDS:
        for field in ("offset", "create_time"):
            if field in data:
                raise InvalidEventError(f"'{field}' is assigned by the log; do not send it")
        raise InvalidEventError(f"unknown event field(s): {', '.join(sorted(data.keys() - FIELDS))}")
    key, namespace = data.get("idempotency_key"), data.get("namespace")
    # Checked here too: a bad key would otherwise fail every request of its commit group.
    check_name("idempotency key", key, optional=True)
    if namespace is not None:  # Event would otherwise turn "" into the default namespace
        check_name("namespace", namespace)
    key_: str = data.get("key")  # type: ignore[assignment]  # the log validates it
    event = Event(key_, data.get("value"), namespace or DEFAULT_NAMESPACE, data.get("sender"), data.get("context"))
    return event, key


def first_invalid(events: list[Event]) -> tuple[int, Exception] | None:
    """The index of the first event the log would refuse, and why."""
    for i, event in enumerate(events):
        try:
            encode(event)
        except InvalidEventError as exc:
            return i, exc
    return None


class EventsHandler(BaseHandler):
    async def post(self) -> None:
        body = self.body()
        many = isinstance(body, dict) and "events" in body
        items = body["events"] if many else [body]
        if not isinstance(items, list) or not items:
            raise ApiError(400, "invalid_event", "'events' must be a non-empty list")
        parsed = []
        for i, item in enumerate(items):
            try:
                parsed.append(parse_event(item))
            except InvalidEventError as exc:
                raise type(exc)(f"event {i}: {exc}" if many else str(exc)) from None
        events = [e for e, _ in parsed]
        try:
            offsets = await self.service.group_commit.append(events, [k for _, k in parsed])
        except InvalidEventError:
            found = first_invalid(events) if many else None
            if found is None:
                raise
            index, why = found
            raise type(why)(f"event {index}: {why}") from None
        self.send({"offsets": offsets} if many else {"offset": offsets[0]})

    async def get(self) -> None:
        since = self.int_argument("since", 0)
        limit = self.int_argument("limit", 1000)
        assert since is not None and limit is not None
        if limit < 1 or limit > MAX_READ:
            raise ApiError(400, "invalid_argument", f"limit must be between 1 and {MAX_READ}")
        filters = {k: self.get_query_argument(k, None) for k in ("key", "namespace", "sender")}
        events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        self.send({"events": [e.to_dict() for e in events]})
