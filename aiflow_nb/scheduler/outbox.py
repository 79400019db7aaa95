"""The outbox: launches and stops decided, not yet handed to the executor.

A launch is committed (``launches``, launched = FALSE) in the transaction
that decides it; the engine takes the ones that fit, marks them RUNNING in
that transaction, hands them over after the commit and tells the outbox,
which writes them as sent with the next write.  A launch still unsent after
a crash is sent again on restart; the run folder's claim lets one run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

#: (task execution id, attempt)
Launch = tuple[int, int]


class Outbox:
    """Queued launches, stops to send, and launches sent but not yet written as sent."""

    def __init__(self, pending: Iterable[Launch] = ()) -> None:
        self.reset(pending)

    def reset(self, pending: Iterable[Launch]) -> None:
        """Forget everything but the launches committed and unsent (after a load or a rollback)."""
        self._queue: list[Launch] = list(pending)
        self._stops: list[tuple[int, str]] = []
        self._sent: list[Launch] = []

    # -- the scheduler's side ----------------------------------------------------

    def queue_launch(self, te_id: int, attempt: int) -> None:
        self._queue.append((te_id, attempt))

    def queue_launches(self, launches: Iterable[Launch]) -> None:
        """Launches decided, in order (the decision's own pairs, kept as they are)."""
        self._queue.extend(launches)

    def queue_stop(self, te_id: int, reason: str) -> None:
        self._stops.append((te_id, reason))

    def take_sent(self) -> list[Launch]:
        """The launches to write as sent (cleared)."""
        sent, self._sent = self._sent, []
        return sent

    # -- the engine's side --------------------------------------------------------

    def pending(self) -> list[Launch]:
        """Queued launches, oldest first."""
        return list(self._queue)

    def take_launches(self, room: int, request: Callable[[int, int], dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Up to ``room`` launch requests, oldest first; the rest stay queued.

        ``request(te_id, attempt)`` is None for a run that must not run any
        more (stopped before its launch): it leaves the queue as sent.
        """
        taken: list[dict[str, Any]] = []
        if room <= 0:
            return taken
        queue = self._queue
        for i, (te_id, attempt) in enumerate(queue):
            if len(taken) >= room:
                self._queue = queue[i:]
                return taken
            found = request(te_id, attempt)
            if found is None:
                self._sent.append((te_id, attempt))
                continue
            taken.append(found)
        self._queue = []
        return taken

    def sent(self, te_id: int, attempt: int) -> None:
        """The executor has it: written as sent with the next write."""
        self._sent.append((te_id, attempt))

    def take_stops(self) -> list[tuple[int, str]]:
        """The stops to send (cleared)."""
        stops, self._stops = self._stops, []
        return stops
