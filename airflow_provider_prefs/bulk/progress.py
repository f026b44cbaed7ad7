"""Where a bulk run got to, kept in the task checkpoint so a retry or a rerun after a crash resumes.

The state is bounded whatever the item count: items are numbered in input order and run in that
order with a small window in flight, so "everything below ``next`` is finished" plus the few finished
or in-flight items above it describe any moment of the run. An in-flight item carries the exact
operations it is sending (its *intent*), written before the send, so a resumed run re-judges and, if
needed, resends those same operations instead of planning anew.

Items follow the checkpoint policy of :mod:`~airflow_provider_prefs.patching.checkpoint`, through
:class:`ItemCheckpoint`: an applied or unchanged item is never sent again; a refused one (or one that
never left) is planned anew by the next run of the task instance (a clear after a fix); one whose
outcome is unknown keeps its recorded operations and is re-judged.

A chain of item digests guards against resuming over different items (a re-rendered template, an
edited file): the resumed run recomputes it while skipping and refuses to continue if it differs.
Items to plan anew are left out of the chain, so fixing a refused item's data is allowed.

Writes are batched: one write stores every intent registered since the last (the bulk runner parks
the items meanwhile, holding no thread: see :mod:`~airflow_provider_prefs.bulk.write_ahead`; a
caller that waits instead, :meth:`BulkProgress.begin`, is group-committed with the others); finished
items are folded into the next write, and written on their own at most once per ``flush_interval``
and at the end. Each write is a round trip through Airflow's execution API (~15 ms idle, far more
under load) while a PATCH to a nearby service takes a few, so the runner keeps a window of items in
progress (see :data:`~airflow_provider_prefs.bulk.runner.RECORDED_AHEAD`): while part of it is on the
wire, the intents of the rest are being written, and a sender rarely waits for the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_prefs.errors import InvalidInputError

if TYPE_CHECKING:
    from airflow_provider_prefs.patching.changes import Resource
    from airflow_provider_prefs.patching.checkpoint import Checkpoint

#: Format of the stored state; an unknown one is ignored (the run starts over), never misread.
#: Version 2 added ``retry`` (items to plan anew) and counts only items finished for good; version 3
#: stores the intents in flight packed (see :func:`pack_intents`).
STATE_VERSION = 3
#: Key of the state inside the operator's checkpoint namespace.
STATE_KEY = "progress"
#: What the stored state may grow to: Airflow's ``[state_store] max_value_storage_bytes`` defaults to 64 KiB,
#: above which every write from a worker logs a warning. The intents in flight dominate it, so the runner
#: keeps no more items in flight than fit (see :meth:`BulkProgress.window`).
STATE_BYTES_BUDGET = 48 * 1024
#: Stored bytes of an intent besides its operations (index, digest, JSON punctuation).
_INTENT_OVERHEAD_BYTES = 40
_COUNTED = ("applied", "unchanged", "failed")
#: What a stored state counts: items finished for good (failed ones are redone by the next run).
_KEPT = ("applied", "unchanged")


class ItemsChangedError(InvalidInputError):
    """The items differ from those an earlier try of this task instance checkpointed."""


#: What ``json.dumps(sort_keys=True, separators=(",", ":"), allow_nan=False)`` builds on every call, once.
_DIGEST_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def item_digest(item: Any) -> str:
    """A short, stable fingerprint of one input item (also of items that are not JSON)."""
    try:
        text = _DIGEST_ENCODER.encode(item)
    except (TypeError, ValueError):
        text = repr(item)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def _chain(previous: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}:{digest}".encode()).hexdigest()[:32]


@dataclass
class Resume:
    """What an earlier try left: counts of finished items, the intents of those in flight (or whose
    outcome stayed unknown), and the items to plan anew (refused, or never sent)."""

    next: int = 0
    chain: str = ""
    finished_above: dict[int, str] = field(default_factory=dict)
    inflight: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    retry: set[int] = field(default_factory=set)
    #: Items below ``next`` left out of the chain: they were to be planned anew when the prefix passed them.
    unchained: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))

    @property
    def empty(self) -> bool:
        """True when nothing was checkpointed (a first try)."""
        return self.next == 0 and not self.finished_above and not self.inflight and not self.retry

    @property
    def redone(self) -> int:
        """Items this run does again: re-judged (in flight) or planned anew (refused)."""
        return len(self.inflight) + len(self.retry)

    @classmethod
    def from_json(cls, data: Any) -> Resume:
        """Parse stored state; anything unrecognised counts as no state."""
        if not isinstance(data, dict) or data.get("v") not in (1, 2, STATE_VERSION):
            return cls()
        intents = unpack_intents(data["intents"]) if data["v"] >= 3 else data["inflight"]
        return cls(
            next=int(data["next"]),
            chain=str(data["chain"]),
            finished_above={int(k): str(v) for k, v in data["finished"].items()},
            inflight={int(k): (str(v["d"]), list(v["ops"])) for k, v in intents.items()},
            retry=set(expand_ranges(data.get("retry", []))),
            unchained=set(expand_ranges(data.get("unchained", []))),
            counts={name: int(data["counts"].get(name, 0)) for name in _COUNTED},
        )


def pack_intents(intents: dict[str, Any]) -> str:
    """The intents in flight as stored: JSON, zlib-compressed, base64.

    Every write carries the whole window of intents (tens of KB of near-identical operations), and each
    write is parsed, validated and re-encoded by the task's supervisor, the api-server and the
    database; packed, it is a tenth of the size and one string for all of them. The rest of the state
    (``next``, ``counts``, ``retry``) stays readable in Airflow's task state view.
    """
    raw = json.dumps(intents, separators=(",", ":"), allow_nan=False).encode()
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def unpack_intents(packed: Any) -> dict[str, Any]:
    """The intents :func:`pack_intents` stored."""
    intents = json.loads(zlib.decompress(base64.b64decode(str(packed))))
    if not isinstance(intents, dict):
        raise ValueError("packed intents are not an object")
    return intents


def compact_ranges(indices: set[int]) -> list[list[int]]:
    """``{1, 2, 3, 7}`` as ``[[1, 3], [7, 7]]``: how index sets are stored (a refused stretch is one pair)."""
    ranges: list[list[int]] = []
    for index in sorted(indices):
        if ranges and ranges[-1][1] == index - 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ranges


def expand_ranges(ranges: Any) -> list[int]:
    """The indices :func:`compact_ranges` stored."""
    return [index for first, last in ranges for index in range(int(first), int(last) + 1)]


class BulkProgress:
    """Thread-safe progress of one bulk run, mirrored (bounded, batched) into a task checkpoint."""

    def __init__(
        self, store: Checkpoint | None, *, flush_interval: float = 1.0, batch: int = 1, batch_wait: float = 0.0
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
        #: Average size of a recent intent (bytes): its JSON as registered, until a write measured it packed.
        self.intent_bytes = 0.0
        self._packed_measured = False
        self._last_flush = time.monotonic()
        self.flush_interval = flush_interval
        self.resume = Resume.from_json(self._store.get(STATE_KEY)) if self._store else Resume()
        # Live state starts as the stored one: an item in flight before the crash stays recorded
        # (with its original operations) until it finishes in this try.
        self._next = self.resume.next
        self._chain = self.resume.chain
        self._finished = dict(self.resume.finished_above)
        self._inflight = {i: {"d": d, "ops": ops} for i, (d, ops) in self.resume.inflight.items()}
        self._retry = set(self.resume.retry)
        self._unchained = set(self.resume.unchained)
        self._counts = {name: self.resume.counts[name] if name in _KEPT else 0 for name in _COUNTED}

    @property
    def enabled(self) -> bool:
        """True when progress survives a retry (a task state store is available)."""
        return self._store is not None

    def forget(self) -> None:
        """The run succeeded: drop the checkpoint, so clearing the task later runs every item anew.

        Left to Airflow when it clears task state on success itself (see ``TaskCheckpoint.forget_on_success``).
        """
        if self._store is not None:
            self._store.forget_on_success()

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
        pending = self.register(index, digest, ops)
        if pending is not None:
            pending.wait()

    def register(self, index: int, digest: str, ops: list[dict[str, Any]]) -> IntentWrite | None:
        """Record the exact operations item ``index`` is about to send, without waiting for the store:
        the returned :class:`IntentWrite` says when they are stored (None without a store)."""
        if self._store is None:
            return None
        size = 0
        if not self._packed_measured:  # afterwards the size comes from the writes, packed
            try:
                size = len(json.dumps(ops, allow_nan=False)) + _INTENT_OVERHEAD_BYTES
            except (TypeError, ValueError) as exc:
                # Planned operations were encoded already; this guards any other caller, so one bad value
                # fails its own item instead of every later checkpoint write.
                raise InvalidInputError(f"the patch is not valid JSON ({exc}); nothing was sent") from None
        with self._lock:
            if size and not self._packed_measured:
                self.intent_bytes = size if not self.intent_bytes else 0.9 * self.intent_bytes + 0.1 * size
            self._inflight[index] = {"d": digest, "ops": ops}
            self._version += 1
            if not self._unwritten:
                self._oldest_unwritten = time.monotonic()
            self._unwritten += 1
            self._registered.notify()
            return IntentWrite(self, self._version)

    def window(self, most: int, least: int) -> int:
        """How many items may be in flight (each with its intent stored): ``most``, fewer when that many
        intents of the size measured so far would take the stored state over :data:`STATE_BYTES_BUDGET`."""
        if self._store is None or not self.intent_bytes:
            return most
        return max(least, min(most, int(STATE_BYTES_BUDGET // self.intent_bytes)))

    def finish(self, index: int, digest: str, status: str, *, held: bool = False) -> None:
        """Item ``index`` is finished (applied, unchanged, dry run or failed); written in batches.

        ``held``: a failed item's recorded operations still stand (its outcome is unknown): it stays
        in flight for the next run to re-judge. A failed item without them is planned anew by the next run.
        """
        with self._lock:
            if status == "failed" and held:
                self._retry.discard(index)  # its recorded operations stay in _inflight
            else:
                self._inflight.pop(index, None)
                if status == "failed":
                    self._retry.add(index)
                else:
                    self._retry.discard(index)
            if status in _KEPT:
                self._counts[status] += 1
            if index == self._next:
                self._finished[index] = digest
                while self._next in self._finished:
                    passed = self._finished.pop(self._next)
                    if self._next in self._retry:
                        self._unchained.add(self._next)  # not chained: its data may be fixed before it is redone
                    else:
                        self._chain = _chain(self._chain, passed)
                    self._next += 1
            elif index > self._next:
                self._finished[index] = digest
            self._version += 1
            version = self._version
        if self._store is not None and time.monotonic() - self._last_flush >= self.flush_interval:
            self._write_through(version, gather=False)

    def flush(self) -> None:
        """Store everything recorded so far (at the end of a run), without waiting to gather more."""
        with self._lock:
            version = self._version
        self._write_through(version, gather=False)

    def _write_through(self, version: int, *, gather: bool = True) -> None:
        """Group commit: make sure a write containing ``version`` is stored (one write serves many).

        While one write is on its way, every sender that registers waits; when it ends, those it
        covered go on at once and one of the others gathers a batch (see ``batch``; not when ``gather``
        is False: the caller gathered already) and writes everything registered by then.
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
            while gather and self._unwritten < self.batch and (left := deadline - time.monotonic()) > 0:
                self._registered.wait(left)
            snapshot = self._snapshot()
            taken = self._version
            self._unwritten = 0
        stored = False
        try:
            intents = snapshot.pop("inflight")
            snapshot["intents"] = pack_intents(intents)
            if len(intents) >= 8:  # the window is sized on what an intent takes packed, once measured on a few
                per_intent = len(snapshot["intents"]) / len(intents)
                with self._lock:
                    measured = self._packed_measured
                    self.intent_bytes = (self.intent_bytes + per_intent) / 2 if measured else per_intent
                    self._packed_measured = True
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
            "retry": compact_ranges(self._retry),
            "unchained": compact_ranges(self._unchained),
            "counts": {name: self._counts[name] for name in _KEPT},
        }


class IntentWrite:
    """An item's intent, registered with the run's progress and not yet known stored (a
    :class:`~airflow_provider_prefs.patching.changes.PendingRecord`)."""

    def __init__(self, progress: BulkProgress, version: int) -> None:
        self._progress = progress
        #: The progress version that holds the intent: any write of it or a later one stores it.
        self.version = version
        #: Called when the write that was to store the intent failed: the item was not sent.
        self.on_lost: Callable[[], None] | None = None

    def wait(self) -> None:
        """Return once a write holding the intent is stored (writing it now, with what else is registered, if
        no other write covers it); raise what that write raised."""
        self._stored(gather=True)

    def write(self) -> None:
        """Store the intent, and every other one registered by now, without gathering more first."""
        self._stored(gather=False)

    def lost(self) -> None:
        """The write that was to store the intent failed."""
        if self.on_lost is not None:
            self.on_lost()

    def _stored(self, *, gather: bool) -> None:
        try:
            self._progress._write_through(self.version, gather=gather)
        except BaseException:
            self.lost()
            raise


class ItemCheckpoint:
    """One bulk item's view of the run's progress: the :class:`~airflow_provider_prefs.patching.checkpoint.Checkpoint`
    the checkpoint policy (:meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry`) records the item's intent in.

    Its intent goes into the run's next group-committed write; an outcome is not stored per item (the
    item's :meth:`BulkProgress.finish` covers it). ``held`` tells, once the item is done, whether its
    recorded operations still stand (an unknown outcome, to re-judge) or were dropped (refused: plan anew).
    """

    def __init__(
        self, progress: BulkProgress, index: int, digest: str, resource: Resource, resumed_ops: list[Any] | None
    ) -> None:
        self._progress, self._index, self._digest = progress, index, digest
        self._resource = resource
        self._resumed_ops = resumed_ops
        #: True while recorded operations of this item stand (resumed ones, or an intent written this run).
        self.held = resumed_ops is not None

    @property
    def available(self) -> bool:
        """True when the run's progress survives a retry."""
        return self._progress.enabled

    def get(self, key: str, default: Any = None) -> Any:
        """The intent an earlier try recorded for this item (its digest was checked), or ``default``."""
        from airflow_provider_prefs.patching.checkpoint import resource_key

        if self._resumed_ops is None:
            return default
        return {"key": resource_key(self._resource), "ops": self._resumed_ops}

    def set(self, key: str, value: Any) -> IntentWrite | None:
        """Record the item's intent; returns the write that will store it (see :class:`IntentWrite`)."""
        ops = value.get("ops") if isinstance(value, dict) else None
        if not isinstance(ops, list):
            return None
        pending = self._progress.register(self._index, self._digest, ops)
        self.held = True
        if pending is not None:
            pending.on_lost = self._lost
        return pending

    def _lost(self) -> None:
        self.held = False  # never stored, so never sent: the next run plans the item anew

    def delete(self, *keys: str) -> None:
        """The change was refused or never sent: the next run plans the item anew."""
        self._resumed_ops = None
        self.held = False

    def forget_on_success(self) -> None:
        """Nothing per item: the run forgets its progress when the task succeeds."""
