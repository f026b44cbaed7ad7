"""The bulk runner's threads: one per connection, taking calls from one queue in order.

Leaner than a :class:`~concurrent.futures.ThreadPoolExecutor` on purpose: a bulk item makes two or
three hops between threads (planned, stored, sent), and an executor's future per hop (a condition
and a lock each, and a waiter on every pending future for each wait) cost the sending core more
than the hop itself. Results travel by callbacks instead (see :class:`~.runner._OrderedDispatcher`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class Workers:
    """``count`` threads running the calls given to :meth:`submit`, oldest first.

    A call must not raise: whatever it raises is the caller's to catch and deliver, because a thread
    that died would leave its item unfinished.
    """

    def __init__(self, count: int, name: str = "prefs-bulk") -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True) for n in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        """Run ``call(*args)`` on the next free thread."""
        self._calls.put((call, args))

    def close(self) -> None:
        """Finish the calls queued so far, then stop the threads (a call queued later is not run)."""
        for _ in self._threads:
            self._calls.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (entry := self._calls.get()) is not _STOP:
            call, args = entry
            call(*args)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
