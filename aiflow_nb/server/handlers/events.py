"""POST/GET /api/v1/events."""

from __future__ import annotations

from typing import Any, NoReturn

from aiflow_nb import faults
from aiflow_nb.errors import InvalidEventError
from aiflow_nb.events import DEFAULT_NAMESPACE, Event
from aiflow_nb.events.event import check_name, encode
from aiflow_nb.server.handlers.base import ApiError, BaseHandler

MAX_READ = 10_000


#: The fields a client may send (``offset`` and ``create_time`` are the log's).
FIELDS = frozenset({"key", "value", "namespace", "sender", "context", "idempotency_key"})


def parse_events(items: list[Any], many: bool) -> tuple[list[Event], list[str | None]]:
    """Events and their idempotency keys from a request's JSON.

    Only the shape is checked here; the log validates the names and values
    when it appends (a bad request then fails alone, see ``GroupCommit``).
    One loop, no call per event: a batch holds up to 100,000 of them.
    """
    events: list[Event] = []
    keys: list[str | None] = []
    add_event, add_key = events.append, keys.append
    for i, data in enumerate(items):
        if type(data) is not dict or not data.keys() <= FIELDS:
            _refuse(i, data, many)
        get = data.get
        key, namespace = get("idempotency_key"), get("namespace")
        if key is not None or not (namespace is None or (type(namespace) is str and namespace.strip())):
            try:
                # Checked here too: a bad key would otherwise fail every request of its commit group.
                check_name("idempotency key", key, optional=True)
                check_name("namespace", namespace, optional=True)  # Event would turn "" into the default
            except InvalidEventError as exc:
                raise type(exc)(f"event {i}: {exc}" if many else str(exc)) from None
        event_key: str = get("key")  # type: ignore[assignment]  # the log validates it
        add_event(Event(event_key, get("value"), namespace or DEFAULT_NAMESPACE, get("sender"), get("context")))
        add_key(key)
    return events, keys


def _refuse(index: int, data: Any, many: bool) -> NoReturn:
    prefix = f"event {index}: " if many else ""
    if not isinstance(data, dict):
        raise InvalidEventError(f"{prefix}an event must be a JSON object with at least a 'key'")
    for field in ("offset", "create_time"):
        if field in data:
            raise InvalidEventError(f"{prefix}'{field}' is assigned by the log; do not send it")
    raise InvalidEventError(f"{prefix}unknown event field(s): {', '.join(sorted(data.keys() - FIELDS))}")


def first_invalid(events: list[Event]) -> tuple[int, Exception] | None:
    """The index of the first event the log would refuse, and why."""
    for i, event in enumerate(events):
        try:
            encode(event)
        except InvalidEventError as exc:
            return i, exc
    return None


class EventsHandler(BaseHandler):
    task_methods = frozenset({"POST"})

    async def post(self) -> None:
        body = self.body()
        many = isinstance(body, dict) and "events" in body
        items = body["events"] if many else [body]
        if not isinstance(items, list) or not items:
            raise ApiError(400, "invalid_event", "'events' must be a non-empty list")
        events, keys = parse_events(items, many)
        batch_key = self.request_key(keys)
        faults.point("http.read")
        try:
            offsets = await self.service.group_commit.append(events, keys, batch_key)
        except InvalidEventError:
            found = first_invalid(events) if many else None
            if found is None:
                raise
            index, why = found
            raise type(why)(f"event {index}: {why}") from None
        self.send({"offsets": offsets} if many else {"offset": offsets[0]})

    def request_key(self, keys: list[str | None]) -> str | None:
        """The ``Idempotency-Key`` header: a retry of the whole request with it appends nothing again."""
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        check_name("idempotency key", key)
        if any(k is not None for k in keys):
            raise InvalidEventError("send either the Idempotency-Key header or an idempotency_key per event, not both")
        return key

    async def get(self) -> None:
        since = self.int_argument("since", 0)
        limit = self.int_argument("limit", 1000)
        assert since is not None and limit is not None
        if limit < 1 or limit > MAX_READ:
            raise ApiError(400, "invalid_argument", f"limit must be between 1 and {MAX_READ}")
        filters = {k: self.get_query_argument(k, None) for k in ("key", "namespace", "sender")}
        events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        self.send({"events": [e.to_dict() for e in events]})
