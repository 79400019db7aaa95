"""POST/GET /api/v1/events."""

from __future__ import annotations

from typing import Any

from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import Event
from aiflow_nb.events.event import check_name, encode
from aiflow_nb.server.handlers.base import ApiError, BaseHandler

MAX_READ = 10_000


def parse_event(data: Any) -> tuple[Event, str | None]:
    if not isinstance(data, dict):
        raise InvalidEventError("an event must be a JSON object with at least a 'key'")
    data = dict(data)
    key = data.pop("idempotency_key", None)
    # Checked here too: a bad key would otherwise fail every request of its commit group.
    check_name("idempotency key", key, optional=True)
    if data.get("namespace") is not None:  # Event.from_dict would turn "" into the default namespace
        check_name("namespace", data["namespace"])
    for field in ("offset", "create_time"):
        if field in data:
            raise InvalidEventError(f"'{field}' is assigned by the log; do not send it")
    event = Event.from_dict(data)
    encode(event)  # validate here, so one bad request cannot fail a whole group
    return event, key


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
        offsets = await self.service.group_commit.append([e for e, _ in parsed], [k for _, k in parsed])
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
