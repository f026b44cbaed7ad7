"""The bulk runner's threads: one per connection, taking calls from one queue in two classes.

Leaner than a :class:`~concurrent.futures.ThreadPoolExecutor` on purpose: a bulk item makes two or
three hops between threads (planned, stored, sent), and an executor's future per hop (a condition
and a lock each, and a waiter on every pending future for each wait) cost the sending core more
than the hop itself. Results travel by callbacks instead (see :class:`~.runner._OrderedDispatcher`).

Calls given as ``first`` (a new item's planning) run before the others (sends of items whose intents
are stored): an item is planned, and its intent registered, as soon as a slot frees, so the next
checkpoint write covers it while the stored items are being sent, instead of it waiting behind them
and the write then holding the connections idle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class Workers:
    """``count`` threads running the calls given to :meth:`submit`: ``first`` ones before the others,
    each class oldest first.

    A call must not raise: whatever it raises is the caller's to catch and deliver, because a thread
    that died would leave its item unfinished.
    """

    def __init__(self, count: int, name: str = "prefs-bulk") -> None:
        # Two queues of calls and one of tickets, one ticket per call: a thread waits for a ticket, then
        # takes a call, a first one if there is any. C queues throughout: no Python-level lock per hop.
        self._first: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._then: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._tickets: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True) for n in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., Any], *args: Any, first: bool = False) -> None:
        """Run ``call(*args)`` on the next free thread."""
        (self._first if first else self._then).put((call, args))
        self._tickets.put(None)

    def close(self) -> None:
        """Finish the calls queued so far, then stop the threads (a call queued later is not run)."""
        for _ in self._threads:
            self._then.put(_STOP)
            self._tickets.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            self._tickets.get()
            entry = self._take()
            if entry is _STOP:
                return
            call, args = entry
            call(*args)

    def _take(self) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        # A ticket is put after its call, so a call is there for every ticket taken: if no first call is
        # left, a later one is (another thread can only have taken one with a ticket of its own).
        while True:
            try:
                return self._first.get_nowait()
            except queue.Empty:
                pass
            try:
                return self._then.get_nowait()
            except queue.Empty:
                continue

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
