"""What the HTTP handlers share: the engine, a database thread, group commit.

The engine's database is guarded by one lock, so every call into it runs
on a small thread pool and the IOLoop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiflow_nb.engine import Engine
from aiflow_nb.errors import StorageError
from aiflow_nb.events.event import EncodedEvents

log = logging.getLogger("aiflow_nb.server")
T = TypeVar("T")


#: One request's part of a group: its events, their idempotency keys, the request's key, and its answer.
Pending = tuple[EncodedEvents, Sequence[str | None], str | None, "asyncio.Future[list[int]]"]
#: A request's answer: its future, and its offsets or the error.
Answer = tuple["asyncio.Future[list[int]]", list[int] | None, Exception | None]


#: While requests still arrive, a group waits for more until none came for this long (seconds) ...
GATHER_QUIET = 0.0003
#: ... or this long in all (long enough for the IOLoop to read a burst of concurrent requests).
GATHER_MAX = 0.015
#: Smaller than the largest recent group, it waits out longer gaps (seconds) ...
GATHER_PEAK_QUIET = 0.003
#: ... for this long at most (so a lull costs a request no more than a commit's time).
GATHER_PEAK_WAIT = 0.005


class GroupCommit:
    """Appends the events of concurrent requests in one transaction.

    A request is answered once its events are committed.  One database
    thread commits group after group while requests are pending.  When the
    last group held more than one request (clients send concurrently), the
    next one is gathered while requests keep arriving (see ``GATHER_QUIET``):
    a commit costs about the same however many requests it holds, and one
    that runs while the IOLoop is busy parsing waits for the GIL, so fewer,
    larger groups serve more requests.  Below the largest recent group it
    also waits out a longer gap (``GATHER_PEAK_QUIET``): without that, many
    clients now and then split into two cohorts, each committed while the
    IOLoop served the other, and stayed split (``bench_http.py`` shows the
    difference).
    A single client's request is committed at once.  A group is taken only
    once the database lock is held: the requests that arrive while the
    scheduler holds it join it.  If a group fails, each of its requests is
    committed on its own, so a bad request fails alone.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.pending: list[Pending] = []
        #: A database thread is committing (or about to): ``submit`` then only adds to ``pending``.
        self.flushing = False
        self._mutex = threading.Lock()  # pending and flushing change on both threads
        #: Requests in the last group committed.
        self.last_size = 0
        #: Requests in the largest recent group (it decays as smaller groups follow).
        self.peak = 0

    def submit(
        self, events: EncodedEvents, keys: Sequence[str | None], batch_key: str | None = None
    ) -> asyncio.Future[list[int]]:
        """Append ``events`` (with their own idempotency ``keys``, or all under ``batch_key``).

        The future (of the running loop) gets their offsets once they are committed.
        """
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        with self._mutex:
            self.pending.append((events, keys, batch_key, future))
            start, self.flushing = not self.flushing, True
        if start:
            self.service.pool.submit(self._run)
        return future

    def _run(self) -> None:
        """On a database thread: commit groups until none is pending."""
        lock = self.service.engine.db.lock
        while True:
            group: list[Pending] = []
            if self.last_size > 1:
                self._gather()
            try:
                with lock:
                    with self._mutex:
                        group, self.pending = self.pending, []
                        if not group:
                            self.flushing = False
                            return
                    self.last_size = len(group)
                    self.peak = max(len(group), self.peak * 7 // 8)
                    self._commit(group)
            except Exception as exc:  # never leave a request unanswered, nor the flag set
                log.exception("group commit failed")
                with self._mutex:
                    self.flushing = False
                    group += self.pending
                    self.pending = []
                self._settle([(future, None, exc) for *_, future in group])
                return
            # Python's lock is not fair: give the engine loop (or a read) waiting for it its turn.
            lock.let_waiters_in()

    def _gather(self) -> None:
        """Wait while requests still join the pending group (up to ``GATHER_MAX``)."""
        now = time.monotonic()
        deadline, peak_until, changed, size = now + GATHER_MAX, now + GATHER_PEAK_WAIT, now, len(self.pending)
        while now < deadline:
            quiet = GATHER_PEAK_QUIET if size < self.peak and now < peak_until else GATHER_QUIET
            if now - changed >= quiet:
                return
            time.sleep(GATHER_QUIET)
            now, count = time.monotonic(), len(self.pending)
            if count != size:
                size, changed = count, now

    def _commit(self, group: list[Pending]) -> None:
        """Commit ``group``; each request is answered once committed."""
        engine = self.service.engine
        committed = False

        def answer(offsets: list[int]) -> None:
            nonlocal committed
            committed = True
            results: list[Answer] = []
            start = 0
            for batch, _, _, future in group:
                size = len(batch.keys)
                results.append((future, offsets[start : start + size], None))
                start += size
            self._settle(results)

        batch_keys, start = [], 0
        for batch, _, batch_key, _ in group:
            if batch_key is not None:
                batch_keys.append((batch_key, start, len(batch.keys)))
            start += len(batch.keys)
        try:
            engine.send_events(
                EncodedEvents.join([batch for batch, *_ in group]),
                [k for _, b, *_ in group for k in b],
                batch_keys=batch_keys,
                on_commit=answer,
            )
            return
        except Exception as exc:
            if committed:  # never append twice
                log.exception("group commit: failed after the commit")
                return
            if len(group) == 1 or isinstance(exc, StorageError):
                # No request of it is to blame when the database cannot be written (a full disk):
                # each would fail again on its own, so all get the error now.
                self._settle([(future, None, exc) for *_, future in group])
                return
        # Some request of the group is bad: find it by committing each alone.
        for batch, keys, batch_key, future in group:
            try:
                offsets = engine.send_events(
                    batch, keys, batch_keys=[(batch_key, 0, len(batch.keys))] if batch_key is not None else ()
                )
            except Exception as exc:
                self._settle([(future, None, exc)])
            else:
                self._settle([(future, offsets, None)])

    @staticmethod
    def _settle(results: list[Answer]) -> None:
        """From a database thread: settle requests' futures on their loop, in one wake-up of it."""
        if not results:
            return

        def settle() -> None:
            for future, offsets, error in results:
                if future.done():  # the client went away
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(offsets)  # type: ignore[arg-type]

        results[0][0].get_loop().call_soon_threadsafe(settle)


class Service:
    """The engine as the HTTP handlers see it."""

    def __init__(self, engine: Engine, token: str, task_token: str | None = None) -> None:
        self.engine = engine
        self.token = token
        #: May only send events: given to tasks that run elsewhere (a Dask worker).
        self.task_token = task_token
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aiflow-nb-db")
        self.group_commit = GroupCommit(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._new_events: asyncio.Event | None = None
        self.latest_offset = engine.log.latest_offset()
        #: The service is stopping: a request that would append events is closed unanswered.
        self.stopping = False
        #: Requests appending events that are not answered yet.
        self.in_flight = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the IOLoop; the engine then tells it about new events."""
        self.loop = loop
        self._new_events = asyncio.Event()
        self.engine.add_listener(self._on_commit)

    def _on_commit(self, latest: int) -> None:
        # Called on the engine's thread.
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._wake, latest)

    def _wake(self, latest: int) -> None:
        self.latest_offset = max(self.latest_offset, latest)
        assert self._new_events is not None
        self._new_events.set()
        self._new_events = asyncio.Event()

    async def wait_for_events(self, after: int, timeout: float) -> None:
        """Return once an event after ``after`` exists, or after ``timeout``."""
        if self.latest_offset > after or self._new_events is None:
            return
        try:
            await asyncio.wait_for(self._new_events.wait(), timeout)
        except TimeoutError:
            pass

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
