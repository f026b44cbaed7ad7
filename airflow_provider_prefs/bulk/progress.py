"""Where a bulk run got to, kept in the task checkpoint so a retry or a rerun after a crash resumes.

The state is bounded whatever the item count: items are numbered in input order and run in that
order with a small window in flight, so "everything below ``next`` is finished" plus the few finished
or in-flight items above it describe any moment of the run. An in-flight item carries the exact
operations it is sending (its *intent*), written before the send, so a resumed run re-judges and, if
needed, resends those same operations instead of planning anew.

A chain of item digests guards against resuming over different items (a re-rendered template, an
edited file): the resumed run recomputes it while skipping and refuses to continue if it differs.

Writes are batched: intents are group-committed (every sender waits until a write containing its
intent is stored, and one write covers every intent registered meanwhile); finished items are
folded into the next write, and written on their own at most once per ``flush_interval`` and at the
end. Each write is a round trip through Airflow's execution API (~15 ms idle, far more under load)
while a PATCH to a nearby service takes a few, so the runner keeps more items planned than it sends
at once (see :data:`~airflow_provider_prefs.bulk.runner.RECORDED_AHEAD`): while one window of items
is on the wire, the intents of the next are being written, and a sender rarely waits for the store.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_prefs.errors import InvalidInputError

#: Format of the stored state; a different one is ignored (the run starts over), never misread.
STATE_VERSION = 1
#: Key of the state inside the operator's checkpoint namespace.
STATE_KEY = "progress"
_COUNTED = ("applied", "unchanged", "failed")


class Store(Protocol):
    """What progress needs from a task checkpoint (see :class:`~.operators.checkpoint.TaskCheckpoint`)."""

    @property
    def available(self) -> bool:
        """True when stored values survive a retry."""

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value, or ``default``."""

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value."""

    def delete(self, *keys: str) -> None:
        """Forget values."""


class ItemsChangedError(InvalidInputError):
    """The items differ from those an earlier try of this task instance checkpointed."""


def item_digest(item: Any) -> str:
    """A short, stable fingerprint of one input item (also of items that are not JSON)."""
    try:
        text = json.dumps(item, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = repr(item)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def _chain(previous: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}:{digest}".encode()).hexdigest()[:32]


@dataclass
class Resume:
    """What an earlier try left: counts of finished items, and the intents of those in flight."""

    next: int = 0
    chain: str = ""
    finished_above: dict[int, str] = field(default_factory=dict)
    inflight: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))

    @property
    def empty(self) -> bool:
        """True when nothing was checkpointed (a first try)."""
        return self.next == 0 and not self.finished_above and not self.inflight

    @classmethod
    def from_json(cls, data: Any) -> Resume:
        """Parse stored state; anything unrecognised counts as no state."""
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return cls()
        return cls(
            next=int(data["next"]),
            chain=str(data["chain"]),
            finished_above={int(k): str(v) for k, v in data["finished"].items()},
            inflight={int(k): (str(v["d"]), list(v["ops"])) for k, v in data["inflight"].items()},
            counts={name: int(data["counts"].get(name, 0)) for name in _COUNTED},
        )


class BulkProgress:
    """Thread-safe progress of one bulk run, mirrored (bounded, batched) into a task checkpoint."""

    def __init__(
        self, store: Store | None, *, flush_interval: float = 1.0, batch: int = 1, batch_wait: float = 0.0
    ) -> None:
        self._store = store if store is not None and store.available else None
        self._lock = threading.Lock()
        #: Signalled when a write ends: the senders it covered go on at once, and one other becomes the writer.
        self._written = threading.Condition(self._lock)
        #: Signalled when an intent is registered: only a writer gathering its batch waits on it.
        self._registered = threading.Condition(self._lock)
        self._writing = False
        self._version = 0
        self._durable = 0
        #: A write waits for this many unwritten intents, or until the oldest has waited ``batch_wait``:
        #: each write is a round trip that costs the api-server CPU, so fewer, larger writes, as long as the
        #: runner has enough items planned ahead to keep its connections busy meanwhile.
        self.batch, self.batch_wait = batch, batch_wait
        self._unwritten = 0
        self._oldest_unwritten = 0.0
        #: Checkpoint writes so far (logged at the end of a run: they should be far fewer than items).
        self.writes = 0
        self._last_flush = time.monotonic()
        self.flush_interval = flush_interval
        self.resume = Resume.from_json(self._store.get(STATE_KEY)) if self._store else Resume()
        # Live state starts as the stored one: an item in flight before the crash stays recorded
        # (with its original operations) until it finishes in this try.
        self._next = self.resume.next
        self._chain = self.resume.chain
        self._finished = dict(self.resume.finished_above)
        self._inflight = {i: {"d": d, "ops": ops} for i, (d, ops) in self.resume.inflight.items()}
        self._counts = dict(self.resume.counts)

    @property
    def enabled(self) -> bool:
        """True when progress survives a retry (a task state store is available)."""
        return self._store is not None

    def forget(self) -> None:
        """The run succeeded: drop the checkpoint, so clearing the task later runs every item anew.

        Left to Airflow when it clears task state on success itself (see ``TaskCheckpoint.forget_on_success``).
        """
        if self._store is not None:
            getattr(self._store, "forget_on_success", self._store.delete)(STATE_KEY)

    def verify_prefix(self, chain: str) -> None:
        """Refuse to resume when the finished prefix of the items is not what was checkpointed."""
        if chain != self.resume.chain:
            raise ItemsChangedError(
                f"the first {self.resume.next} item(s) differ from those an earlier try of this task "
                "instance finished, so its checkpoint cannot be trusted; nothing was sent. Keep the items "
                "stable across retries, or clear this task's state store (a new DAG run starts afresh)"
            )

    def check_digest(self, index: int, digest: str, expected: str) -> None:
        """Refuse to resume when one checkpointed item above the prefix changed."""
        if digest != expected:
            raise ItemsChangedError(
                f"item #{index} differs from the one an earlier try of this task instance recorded; "
                "nothing more was sent. Keep the items stable across retries, or clear this task's state store"
            )

    def begin(self, index: int, digest: str, ops: list[dict[str, Any]]) -> None:
        """Record the exact operations item ``index`` is about to send; return once they are stored."""
        if self._store is None:
            return
        try:
            json.dumps(ops, allow_nan=False)
        except (TypeError, ValueError) as exc:
            # Checked here so one bad value fails its own item instead of every later checkpoint write.
            raise InvalidInputError(f"the patch is not valid JSON ({exc}); nothing was sent") from None
        with self._lock:
            self._inflight[index] = {"d": digest, "ops": ops}
            self._version += 1
            version = self._version
            if not self._unwritten:
                self._oldest_unwritten = time.monotonic()
            self._unwritten += 1
            self._registered.notify()
        self._write_through(version)

    def finish(self, index: int, digest: str, status: str) -> None:
        """Item ``index`` is finished (applied, unchanged, dry run or failed); written in batches."""
        with self._lock:
            self._inflight.pop(index, None)
            if status in self._counts:
                self._counts[status] += 1
            if index == self._next:
                self._chain = _chain(self._chain, digest)
                self._next += 1
                while self._next in self._finished:
                    self._chain = _chain(self._chain, self._finished.pop(self._next))
                    self._next += 1
            elif index > self._next:
                self._finished[index] = digest
            self._version += 1
            version = self._version
        if self._store is not None and time.monotonic() - self._last_flush >= self.flush_interval:
            self._write_through(version)

    def flush(self) -> None:
        """Store everything recorded so far (at the end of a run)."""
        with self._lock:
            version = self._version
        self._write_through(version)

    def _write_through(self, version: int) -> None:
        """Group commit: make sure a write containing ``version`` is stored (one write serves many).

        While one write is on its way, every sender that registers waits; when it ends, those it
        covered go on at once and one of the others gathers a batch (see ``batch``) and writes
        everything registered by then.
        """
        if self._store is None:
            return
        with self._lock:
            while self._durable < version and self._writing:
                self._written.wait()
            if self._durable >= version:
                return
            self._writing = True
            deadline = self._oldest_unwritten + self.batch_wait
            while self._unwritten < self.batch and (left := deadline - time.monotonic()) > 0:
                self._registered.wait(left)
            snapshot = self._snapshot()
            taken = self._version
            self._unwritten = 0
        stored = False
        try:
            self._store.set(STATE_KEY, snapshot)
            stored = True
        finally:
            with self._lock:
                self._writing = False
                if stored:
                    self._durable = max(self._durable, taken)
                    self._last_flush = time.monotonic()
                    self.writes += 1
                self._written.notify_all()

    def _snapshot(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "next": self._next,
            "chain": self._chain,
            "finished": {str(i): d for i, d in self._finished.items()},
            "inflight": {str(i): dict(entry) for i, entry in self._inflight.items()},
            "counts": dict(self._counts),
        }
