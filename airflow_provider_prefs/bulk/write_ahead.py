"""A bulk run's intents stored ahead of their sends, with no thread waiting on the store.

Each item is carried as steps (:meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry_steps`):
a pool thread plans it and registers its intent with the run's progress, then the item is *parked*
here, holding no thread, while that thread plans or sends another. One writer thread stores every
intent registered so far in one write, then hands the items that write covered back to the pool,
which sends them. So the pool needs no more threads than connections, the store's latency overlaps
the sends of items stored earlier, and each write covers as many intents as piled up meanwhile
instead of the few that threads blocked on it could register.

When to write: once the items stored and waiting for a thread run low, or ``batch`` intents are
parked, or the oldest has waited ``max_wait``. "Low" is ``low_water``, or more: half again as many as
the threads send during one write at the measured rate, so the next write lands before they run dry
however slow the store is. Fewer, larger writes matter:
each one costs the execution API and the metadata database CPU, often on the machine that sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.progress import IntentWrite

_Item = TypeVar("_Item")


class WriteAhead(Generic[_Item]):
    """Parks items until a write stores their intents, then resumes them (``resume(item, error)``).

    ``resume`` gets the error the write raised, if it failed: the item was not sent, and its steps
    should see that error (they fail the item, and the next run plans it anew).
    """

    def __init__(
        self,
        resume: Callable[[_Item, BaseException | None], object],
        *,
        batch: int,
        low_water: int,
        max_wait: float,
    ) -> None:
        self._resume = resume
        self.batch, self.low_water, self.max_wait = batch, low_water, max_wait
        self._changed = threading.Condition()
        self._parked: list[tuple[IntentWrite, _Item]] = []
        self._oldest = 0.0
        #: Items a write covered, handed back to the pool, and not yet taken by a thread.
        self._ready = 0
        #: Items taken by the threads so far, and when the last write began (with the count then): the send rate.
        self._taken = 0
        self._last_start, self._taken_at_last_start = time.monotonic(), 0
        #: How many items the threads take during one write, at the last measured rate and write time.
        self._taken_per_write = 0.0
        self._closed = False
        #: The writer was woken because the ready items ran low (once per write: each wake-up costs the GIL).
        self._woken_low = False
        self._thread = threading.Thread(target=self._run, name="prefs-bulk-writer", daemon=True)
        self._thread.start()

    def park(self, pending: IntentWrite, item: _Item) -> None:
        """Hold ``item`` until a write stores its intent (``pending``)."""
        with self._changed:
            if not self._parked:
                self._oldest = time.monotonic()
            self._parked.append((pending, item))
            # Wake the writer only where this park can make a write due: the first (it may be idle, or the
            # ready items may have run low already) and the one that completes a batch.
            if len(self._parked) == 1 or len(self._parked) == self.batch:
                self._changed.notify()

    def taken(self) -> None:
        """A thread took up an item this writer resumed."""
        with self._changed:
            self._ready -= 1
            self._taken += 1
            if self._parked and not self._woken_low and self._ready < self._low():
                self._woken_low = True
                self._changed.notify()

    def close(self) -> None:
        """Store and resume what is parked, then stop the writer thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _due(self) -> bool:
        return (
            self._closed
            or len(self._parked) >= self.batch
            or self._ready < self._low()
            or time.monotonic() - self._oldest >= self.max_wait
        )

    def _low(self) -> int:
        return max(self.low_water, int(self._taken_per_write * 1.5))

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._parked and not self._closed:
                    self._changed.wait()
                if not self._parked:
                    return
                while not self._due():
                    self._changed.wait(max(0.0, self._oldest + self.max_wait - time.monotonic()))
                parked, self._parked = self._parked, []
                self._woken_low = False
                began = time.monotonic()
                rate = (self._taken - self._taken_at_last_start) / max(began - self._last_start, 1e-3)
                self._last_start, self._taken_at_last_start = began, self._taken
            error: BaseException | None = None
            try:
                # One write stores every intent registered up to the newest parked one (and any later).
                max(parked, key=lambda entry: entry[0].version)[0].write()
            except BaseException as exc:  # the items it was to store fail (or the run stops) with it
                error = exc
            with self._changed:
                self._taken_per_write = rate * (time.monotonic() - began)
                self._ready += len(parked)
            for pending, item in parked:
                if error is not None:
                    pending.lost()
                self._resume(item, error)
