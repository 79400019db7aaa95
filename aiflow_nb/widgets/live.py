"""The live machinery of every widget: a thread follows the event stream, another redraws (throttled)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from aiflow_nb.client import Client
from aiflow_nb.errors import AiflowError
from aiflow_nb.events.event import Event
from aiflow_nb.widgets.formatting import close_tree, message_html

log = logging.getLogger("aiflow_nb.widgets")

#: Seconds between two counts of a running duration.
TICK = 1.0
#: How long close() waits for the threads (the stream notices a stop within about a second).
JOIN_TIMEOUT = 5.0
#: Pause before following again after the stream failed.
RETRY_DELAY = 2.0

_LIVE: weakref.WeakSet[LiveWidget] = weakref.WeakSet()


def stop_all() -> None:
    """Stop the threads of every live widget (run at exit, so a kernel shuts down cleanly)."""
    live = list(_LIVE)
    for widget in live:  # all at once, so they wind down together
        widget._signal_stop()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for widget in live:
        widget.stop(deadline)


atexit.register(stop_all)


# -- the live machinery -----------------------------------------------------------------------


class LiveWidget(widgets.VBox):  # type: ignore[misc]
    """A VBox redrawn by :meth:`refresh` whenever the event stream brings an event it wants."""

    def __init__(self, client: Client, throttle: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.throttle = throttle
        self.message = widgets.HTML()
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error_shown = False

    # Hooks of the subclasses.
    def _begin(self) -> int:
        """Pin the stream position (loading what the widget needs from before it); return it."""
        return int(self.client.health()["latest_offset"])

    def _wants(self, event: Event) -> bool:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError

    def _counting(self) -> bool:
        """Whether something shown is running (so its duration counts on)."""
        return False

    def _count(self) -> None:
        """Count the running durations on from what was last read (no request)."""

    #: Whether a redraw reads the service (so one that works shows the service is back).
    _draw_reads_service = True

    def _show_error(self, text: str) -> None:
        self._error_shown = True
        self.message.value = message_html(text, error=True)

    def _clear_error(self) -> None:
        if self._error_shown:
            self._error_shown = False
            self.message.value = ""

    def _followed(self) -> None:
        # The service answers; a widget whose redraws read the service lets the next redraw say so.
        if not self._draw_reads_service:
            self._clear_error()

    # Public.
    def refresh(self) -> None:
        """Read the service and redraw (the follower thread calls this after relevant events)."""
        if self._closing.is_set():
            return
        with self._lock:
            try:
                self._draw()
            except AiflowError as exc:
                self._show_error(str(exc))
                return
            if self._draw_reads_service:
                self._clear_error()

    @property
    def running(self) -> bool:
        """Whether the widget still follows the service."""
        return any(t.is_alive() for t in self._threads)

    def stop(self, deadline: float | None = None) -> None:
        """Stop following the service (waiting for the threads until ``deadline``); the widget stays."""
        self._signal_stop()
        if deadline is None:
            deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        _LIVE.discard(self)

    def _signal_stop(self) -> None:
        self._closing.set()
        self._dirty.set()  # wakes the painter

    def close(self) -> None:
        """Stop following and close the widget and its parts."""
        self.stop()
        # Not under the lock: a redraw stuck in a slow request must not hold up the close (redrawing
        # a closed widget only changes values nobody sees).
        for child in self.children:
            close_tree(child)
        super().close()

    # The threads.
    def _start(self, name: str) -> None:
        self._threads = [
            threading.Thread(target=self._follow, name=f"aiflow-{name}-stream", daemon=True),
            threading.Thread(target=self._paint, name=f"aiflow-{name}-paint", daemon=True),
        ]
        _LIVE.add(self)
        for thread in self._threads:
            thread.start()

    def _follow(self) -> None:
        since: int | None = None
        while not self._closing.is_set():
            try:
                if since is None:
                    since = self._begin()
                    self._followed()
                    self._dirty.set()  # what changed before the stream position was pinned
                for event in self.client.stream(since, stop=self._closing):
                    since = max(since, event.offset or 0)
                    self._followed()
                    if self._wants(event):
                        self._dirty.set()
            except Exception as exc:
                # Whatever goes wrong, keep following: the service may come back.
                log.warning("%s: following the service failed: %s", type(self).__name__, exc)
                if not self._closing.is_set():
                    self._show_error(f"not following the service: {exc}")
                self._closing.wait(RETRY_DELAY)

    def tick(self) -> None:
        """Count the running durations on (the painter calls this every TICK seconds while any runs)."""
        if self._closing.is_set():
            return
        with self._lock:
            self._count()

    def _paint(self) -> None:
        while True:
            dirty = self._dirty.wait(TICK if self._counting() else None)
            if self._closing.is_set():
                return
            try:
                if dirty:
                    self._dirty.clear()
                    self.refresh()
                else:
                    self.tick()
            except Exception as exc:
                log.warning("%s: redraw failed: %s", type(self).__name__, exc, exc_info=True)
                self._show_error(f"redraw failed: {exc}")
            self._closing.wait(self.throttle)
