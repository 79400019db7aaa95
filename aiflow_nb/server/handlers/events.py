"""POST/GET /api/v1/events."""

from __future__ import annotations

from aiflow_nb import faults
from aiflow_nb.server.handlers.base import ApiError, BaseHandler
from aiflow_nb.server.handlers.lines import LineEvents, is_ndjson
from aiflow_nb.server.handlers.parse import read_json_form, request_key
from aiflow_nb.server.handlers.records import listing

MAX_READ = 10_000
#: The longest a GET /events waits for a new event (seconds).
MAX_WAIT = 30


class EventsHandler(BaseHandler):
    """POST appends events (one, the JSON form of a batch, or NDJSON lines); GET reads them."""

    # The token given to tasks may send events (and do nothing else).
    task_token_methods = frozenset({"POST"})

    def prepare(self) -> None:
        #: An NDJSON body, parsed as it arrives (None: a JSON body, parsed once complete).
        self.lines: LineEvents | None = None
        super().prepare()
        if self.request.method == "POST" and is_ndjson(self.request.headers.get("Content-Type")):
            self.lines = LineEvents()

    def data_received(self, chunk: bytes) -> None:
        if self.lines is not None:
            self.lines.feed(chunk)
        else:
            self._chunks.append(chunk)

    async def post(self) -> None:
        if self.lines is not None:
            many = True
            events, keys = self.lines.result()
        else:
            events, keys, many = read_json_form(b"".join(self._chunks))
        batch_key = request_key(self.request.headers, keys)
        faults.point("http.read")
        service = self.service
        if service.stopping:  # nothing is stored: the client sees the connection close unanswered
            self.request.connection.close()  # type: ignore[union-attr]
            return
        # Answered once committed; if the client left meanwhile, what was committed stays committed
        # and a retry with the same key gets its offsets.
        service.in_flight += 1
        try:
            offsets = await service.group_commit.submit(events, keys, batch_key)
            self.send({"offsets": offsets} if many else {"offset": offsets[0]})
        finally:
            service.in_flight -= 1

    async def get(self) -> None:
        since = self.int_argument("since", 0)
        limit = self.int_argument("limit", 1000)
        assert since is not None and limit is not None
        if limit < 1 or limit > MAX_READ:
            raise ApiError(400, "invalid_argument", f"limit must be between 1 and {MAX_READ}")
        wait = self.int_argument("wait", 0)
        assert wait is not None
        if wait < 0 or wait > MAX_WAIT:
            raise ApiError(400, "invalid_argument", f"wait must be between 0 and {MAX_WAIT} seconds")
        filters = {k: self.get_query_argument(k, None) for k in ("key", "namespace", "sender")}
        events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        if not events and wait:
            # A long poll: answer as soon as an event after ``since`` is committed (it may not match
            # the filters: the caller then asks again from the same offset).
            await self.service.wait_for_events(since, timeout=wait)
            events = await self.service.db(self.engine.events, since=since, limit=limit, **filters)
        self.send(listing("events", events))
