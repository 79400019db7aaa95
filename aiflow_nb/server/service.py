"""What the HTTP handlers share: the engine, a database thread, group commit.

The engine's database is guarded by one lock, so every call into it runs
on a small thread pool and the IOLoop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiflow_nb.engine import Engine
from aiflow_nb.events import Event

log = logging.getLogger("aiflow_nb.server")
T = TypeVar("T")


class GroupCommit:
    """Appends the events of concurrent requests in one transaction.

    A request is answered once its events are committed.  The group is taken
    only once the database lock is held, so the requests that arrive while
    the scheduler holds it (or the previous group commits) join the group
    instead of waiting for the next one.  If a group fails, each of its
    requests is committed on its own, so a bad request fails alone.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.pending: list[tuple[Sequence[Event], Sequence[str | None], asyncio.Future[list[int]]]] = []
        self.flushing = False
        self._mutex = threading.Lock()  # pending is swapped on a database thread

    async def append(self, events: Sequence[Event], keys: Sequence[str | None]) -> list[int]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        with self._mutex:
            self.pending.append((events, keys, future))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    def _commit(self) -> None:
        """On a database thread: commit what is pending; each request is answered once committed."""
        engine = self.service.engine
        with engine.db.lock:
            with self._mutex:
                group, self.pending = self.pending, []
            if not group:
                return

            committed = False

            def answer(offsets: list[int]) -> None:
                nonlocal committed
                committed = True
                start = 0
                for batch, _, future in group:
                    self._resolve(future, offsets[start : start + len(batch)], None)
                    start += len(batch)

            try:
                engine.send_events(
                    [e for b, _, _ in group for e in b], [k for _, b, _ in group for k in b], on_commit=answer
                )
                return
            except Exception as exc:
                if committed:  # never append twice
                    log.exception("group commit: failed after the commit")
                    return
                if len(group) == 1:
                    self._resolve(group[0][2], None, exc)
                    return
            # Some request of the group is bad: find it by committing each alone.
            for batch, keys, future in group:
                try:
                    offsets = engine.send_events(batch, keys)
                except Exception as exc:
                    self._resolve(future, None, exc)
                else:
                    self._resolve(future, offsets, None)

    def _resolve(self, future: asyncio.Future[list[int]], offsets: list[int] | None, error: Exception | None) -> None:
        """From a database thread: settle a request's future on its loop."""

        def settle() -> None:
            if future.done():  # the client went away
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(offsets)  # type: ignore[arg-type]

        future.get_loop().call_soon_threadsafe(settle)

    async def _flush(self) -> None:
        try:
            while self.pending:
                await self.service.db(self._commit)
        finally:
            self.flushing = False


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
        except asyncio.TimeoutError:
            pass

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
