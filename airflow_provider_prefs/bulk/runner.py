"""Many changes with bounded concurrency over one hook (one session, one pool, one 429 gate).

:func:`apply_changes` is what the hooks' ``bulk_patch_*`` methods run: each item becomes a resource
and its change, planned and sent exactly once by :mod:`~airflow_provider_prefs.patching.changes`,
with the run's checkpoint (:mod:`.progress`) recording each item's operations before they are sent.
:func:`run_bulk` underneath only bounds the concurrency.

Input is consumed lazily and results are folded into counters as they arrive, so memory stays flat
whether there are ten items or a million. A failed item never stops the others, whatever it raised:
it becomes a failure row naming the item, and the caller decides at the end what failures mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, cast

from airflow_provider_prefs.bulk.workers import Workers
from airflow_provider_prefs.bulk.write_ahead import WriteAhead
from airflow_provider_prefs.models import BulkReport, ChangeOutcome

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.progress import BulkProgress, IntentWrite
    from airflow_provider_prefs.patching.changes import Carried, PendingRecord, Resource

    #: How a hook carries out one change, in steps (see ``PrefsApiHook.carry_steps``).
    Carry = Callable[..., Generator[PendingRecord, None, Carried]]

_log = logging.getLogger(__name__)

#: How many failures a report lists in full; the rest are only counted.
MAX_LISTED_FAILURES = 100
#: How much of an item (or of an error) a failure row quotes.
MAX_QUOTED_CHARS = 200


def quote_item(item: Any) -> str:
    """A bounded description of an input item for failure rows and messages."""
    text = repr(item)
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 3] + "..."


@dataclass(frozen=True)
class BadItem:
    """An input entry that could not even be read (e.g. a ``.jsonl`` line that is not JSON)."""

    label: str
    error: str


@dataclass(frozen=True)
class BulkItem:
    """One item of a bulk run: its position, the input, and for a resumed item the operations it sent."""

    index: int
    item: Any
    digest: str = ""
    #: Operations an earlier try recorded before it stopped; re-judged and resent, never re-planned.
    resumed_ops: list[dict[str, Any]] | None = None
    #: The resource the item changes and its ``patch``/``desired`` (see :func:`with_resources`).
    resource: Resource | None = None
    change: dict[str, Any] = field(default_factory=dict)
    #: Why the item has no resource (it is unreadable or names none): its failure row.
    error: str | None = None
    #: A later item of the same resource was already read: guard this one against its late copies.
    followed: bool = False

    @property
    def label(self) -> str:
        """How failure rows name this item when it has no resource name yet."""
        if isinstance(self.item, BadItem):
            return self.item.label
        return f"item #{self.index} {quote_item(self.item)}"


def item_tuple(item: Any, lengths: tuple[int, ...], shape: str) -> tuple[Any, ...]:
    """A positional item (list or tuple) of one of the accepted ``lengths``; anything else is refused."""
    from airflow_provider_prefs.errors import InvalidInputError

    if isinstance(item, list | tuple) and len(item) in lengths:
        return tuple(item)
    kind = f"a {len(item)}-item {type(item).__name__}" if isinstance(item, list | tuple) else type(item).__name__
    raise InvalidInputError(f"each item must be {shape}; got {kind}")


def failed_outcome(target: str, exc: BaseException) -> ChangeOutcome:
    """The outcome recorded for an item that could not be applied (message bounded)."""
    error = f"{type(exc).__name__}: {exc}"
    if len(error) > 4 * MAX_QUOTED_CHARS:
        error = error[: 4 * MAX_QUOTED_CHARS - 3] + "..."
    return ChangeOutcome(status="failed", target=target[: 2 * MAX_QUOTED_CHARS], error=error)


def _guarded(handle: Callable[[Any], ChangeOutcome], label: Callable[[Any], str]) -> Callable[[Any], ChangeOutcome]:
    """``handle`` that turns any exception into the item's failure row (a thread pool would re-raise it)."""

    def run(item: Any) -> ChangeOutcome:
        try:
            return handle(item)
        except Exception as exc:
            return failed_outcome(label(item), exc)

    return run


def run_bulk(
    items: Iterable[Any],
    handle: Callable[[Any], ChangeOutcome],
    *,
    max_concurrency: int = 8,
    on_outcome: Callable[[ChangeOutcome], None] | None = None,
    report: BulkReport | None = None,
    label: Callable[[Any], str] = quote_item,
    key: Callable[[Any], Hashable | None] | None = None,
    dispatch: Callable[[Any, bool], Any] | None = None,
) -> BulkReport:
    """Run ``handle`` over ``items`` with at most ``max_concurrency`` in flight; fold into a report.

    Items with the same ``key`` (the resource they change) run one after the other in input order;
    items of different keys, and items whose key is None, run concurrently. ``dispatch`` sees each
    item right before it is handed to a thread, with whether a later item of the same key has
    already been read (see :data:`LOOKAHEAD_PER_THREAD`), and returns what ``handle`` gets.

    Never raises for an item: an exception from ``handle`` becomes that item's failure row, and an
    exception while reading ``items`` stops reading (the items already started still finish) and is
    reported as a failure row too.
    """
    safe = _guarded(handle, label)
    threads = max(1, max_concurrency)

    def start(work: Any, finish: Callable[[ChangeOutcome | BaseException], None]) -> None:
        workers.submit(_delivered, safe, work, finish)

    with Workers(threads) as workers:
        return run_ordered(
            items,
            start,
            max_pending=lambda: 2 * threads,
            lookahead=LOOKAHEAD_PER_THREAD * threads if threads > 1 else 0,
            on_outcome=on_outcome,
            report=report,
            label=label,
            key=key,
            dispatch=dispatch,
        )


def _delivered(
    handle: Callable[[Any], ChangeOutcome], work: Any, finish: Callable[[ChangeOutcome | BaseException], None]
) -> None:
    try:
        outcome: ChangeOutcome | BaseException = handle(work)
    except BaseException as exc:  # stops the run (a KeyboardInterrupt, a test's simulated kill), never a thread
        outcome = exc
    finish(outcome)


def run_ordered(
    items: Iterable[Any],
    start: Callable[[Any, Callable[[ChangeOutcome | BaseException], None]], None],
    *,
    max_pending: Callable[[], int],
    lookahead: int,
    on_outcome: Callable[[ChangeOutcome], None] | None = None,
    report: BulkReport | None = None,
    label: Callable[[Any], str] = quote_item,
    key: Callable[[Any], Hashable | None] | None = None,
    dispatch: Callable[[Any, bool], Any] | None = None,
) -> BulkReport:
    """:func:`run_bulk` for a caller that starts each item itself: ``start(work, finish)`` calls
    ``finish`` once, from any thread, with the item's outcome (or what must stop the run). At most
    ``max_pending`` items are started and unfinished at once."""
    report = report if report is not None else BulkReport()
    key_of = key or (lambda _item: None)

    def record(outcome: ChangeOutcome) -> None:
        report.total += 1
        if outcome.status == "failed":
            report.failed += 1
            if len(report.failures) < MAX_LISTED_FAILURES:
                report.failures.append(outcome)
            else:
                report.failures_truncated += 1
        elif outcome.status == "unchanged":
            report.unchanged += 1
        else:
            report.applied += 1
        if outcome.replans:
            report.replanned += 1
        if on_outcome is not None:
            on_outcome(outcome)

    def pulled() -> Iterator[Any]:
        iterator = iter(items)
        while True:
            try:
                yield next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                record(failed_outcome(f"items (reading stopped after {report.total} item(s))", exc))
                return

    _OrderedDispatcher(start, record, key_of, dispatch, max_pending=max_pending, lookahead=lookahead).run(pulled())
    return report


#: With a checkpoint, items started (planned, their intents being stored or stored, or on the wire) per
#: connection: while some are on the wire, the intents of the next ones are stored in one write, and a
#: write covers about half of them, so this sets how many writes a run makes (~2 per 1,000 items at 8
#: connections). Fewer when the intents are large: the stored state stays under
#: :data:`~.progress.STATE_BYTES_BUDGET`. A resumed try re-judges at most this many items per
#: ``max_concurrency`` (1,024 at the default 8). Measured in the Celery + PostgreSQL deployment, where a
#: write costs the worker, the api-server and the database ~35 ms of CPU on the sending machine: 64
#: (4.1 writes per 1,000 items) ran at 0.76x raw requests, 128 at 0.82x (2.2 writes per 1,000).
RECORDED_AHEAD = 128

#: A checkpoint write waits to gather this many intents per connection, unless the items stored and
#: waiting to be sent run low (:data:`WRITE_LOW_WATER_PER_CONNECTION`, the usual trigger) or
#: WRITE_GATHER_SECONDS passed: each write costs the execution API and the metadata database ~10-30 ms
#: of CPU, so at ~1,000 PATCH/s a write per ~500 items keeps that under a few percent of the run.
WRITE_BATCH_PER_CONNECTION = 64

#: Stored items waiting for a connection, per connection, below which the next write starts at once: enough
#: to keep every connection busy through a store round trip of ~25 ms at ~1,000 PATCH/s.
WRITE_LOW_WATER_PER_CONNECTION = 4

#: The longest a checkpoint write waits to gather a batch of intents (see :mod:`.write_ahead`): long
#: enough for a batch at ~1,000 PATCH/s (at 0.25 s writes were cut short at ~290 intents). It delays no
#: send while stored items wait for a connection: those running low starts the write at once.
WRITE_GATHER_SECONDS = 0.6

#: Items read ahead of the next one handed to a thread, per thread: how far a run looks for a later
#: change of the same resource (see :func:`apply_changes`, which then guards the earlier one).
LOOKAHEAD_PER_THREAD = 2


class _OrderedDispatcher:
    """Hands items to a thread pool: one item per key at a time, in input order, within a bounded window.

    Every item read and not finished (read ahead, waiting for its key, or in a thread) is at most
    :func:`max_window` items behind the oldest unfinished one, so memory is bounded whatever the input
    length, and a key that is slow, throttled or has many items in a row stalls the others only
    once the window is full of its items.
    """

    def __init__(
        self,
        start: Callable[[Any, Callable[[ChangeOutcome | BaseException], None]], None],
        record: Callable[[ChangeOutcome], None],
        key_of: Callable[[Any], Hashable | None],
        dispatch: Callable[[Any, bool], Any] | None,
        *,
        max_pending: Callable[[], int],
        lookahead: int,
    ) -> None:
        self.start, self.record, self.key_of, self.dispatch = start, record, key_of, dispatch
        self.max_pending = max_pending
        self.window = max_window(max_pending())
        self.lookahead = lookahead
        self.buffer: deque[tuple[int, Any, Hashable | None]] = deque()
        self.waiting: dict[Hashable, deque[tuple[int, Any]]] = {}
        #: Items of each key read and not yet handed to a thread (buffer and waiting).
        self.queued: Counter[Hashable] = Counter()
        #: Started items by sequence number: their keys.
        self.pending: dict[int, Hashable | None] = {}
        #: Finished items as they finish, from any thread: (sequence number, outcome or what stops the run).
        self.done: queue.SimpleQueue[tuple[int, ChangeOutcome | BaseException]] = queue.SimpleQueue()
        self.unfinished: deque[int] = deque()
        self.finished: set[int] = set()

    def run(self, items: Iterator[Any]) -> None:
        """Read, hand out and collect until every item is finished."""
        sequence = 0
        exhausted = False
        while True:
            moved = True
            while moved:
                moved = False
                if not exhausted and len(self.buffer) <= self.lookahead and self._window_open(sequence):
                    item = next(items, _END)
                    if item is _END:
                        exhausted = True
                    else:
                        key = self.key_of(item)
                        self.buffer.append((sequence, item, key))
                        self.unfinished.append(sequence)
                        if key is not None:
                            self.queued[key] += 1
                        sequence += 1
                        moved = True
                # Hand out what is read, keeping the lookahead full unless no more can be read for now.
                reading_blocked = exhausted or not self._window_open(sequence)
                if (
                    self.buffer
                    and len(self.pending) < max(1, self.max_pending())
                    and (len(self.buffer) > self.lookahead or reading_blocked)
                ):
                    seq, item, key = self.buffer.popleft()
                    if key is not None and key in self.waiting:
                        self.waiting[key].append((seq, item))
                    else:
                        self._submit(seq, item, key)
                    moved = True
            if not self.pending:
                if exhausted and not self.buffer:
                    return
                continue
            done = [self.done.get()]
            if len(self.pending) >= max(8, self.max_pending() // 2):
                # Many started items still queue for the threads, so nothing waits on this thread: let more
                # finish before taking them all at once (each wake-up costs the sending core a GIL hand-off).
                time.sleep(GATHER_FINISHED_SECONDS)
            while not self.done.empty():
                done.append(self.done.get_nowait())
            for seq, result in sorted(done, key=lambda entry: entry[0]):  # in input order, where there is a choice
                self._finished(seq, result)

    def _window_open(self, sequence: int) -> bool:
        return not self.unfinished or sequence - self.unfinished[0] < self.window

    def _submit(self, seq: int, item: Any, key: Hashable | None) -> None:
        later = False
        if key is not None:
            self.queued[key] -= 1
            later = self.queued[key] > 0
            if not later:
                del self.queued[key]
            self.waiting.setdefault(key, deque())
        work = self.dispatch(item, later) if self.dispatch is not None else item
        self.pending[seq] = key
        self.start(work, functools.partial(self._deliver, seq))

    def _deliver(self, seq: int, result: ChangeOutcome | BaseException) -> None:
        self.done.put((seq, result))

    def _finished(self, seq: int, result: ChangeOutcome | BaseException) -> None:
        key = self.pending.pop(seq)
        if isinstance(result, BaseException):
            raise result
        self.record(result)
        if key is not None:
            queue = self.waiting[key]
            if queue:
                next_seq, next_item = queue.popleft()
                self._submit(next_seq, next_item, key)
            else:
                del self.waiting[key]
        self.finished.add(seq)
        while self.unfinished and self.unfinished[0] in self.finished:
            self.finished.discard(self.unfinished.popleft())


_END = object()

#: How long the dispatcher lets finished items pile up before taking them, while at least half its
#: window is started (never while few are, e.g. a feed of one customer, whose items go one at a time).
#: Measured outside Airflow (6,000 items, checkpoints on, two interleaved runs of 3 rounds each): CPU per
#: item 612 and 595 us without it, 567 and 582 us with it.
GATHER_FINISHED_SECONDS = 0.002


class BulkOptions(TypedDict, total=False):
    """How a bulk run goes, the same for every service (the keyword arguments of :func:`apply_changes`)."""

    #: Items in flight at once; capped at the connection pool size.
    max_concurrency: int
    #: Preview every item; send nothing (and record nothing).
    dry_run: bool
    #: The run's checkpoint (see :mod:`airflow_provider_prefs.bulk.progress`).
    progress: BulkProgress | None
    #: Called in the calling thread with each item's outcome as it finishes (not for skipped items).
    on_outcome: Callable[[ChangeOutcome], None] | None


def apply_changes(
    items: Iterable[Any],
    resource_of: Callable[[Any], tuple[Resource, dict[str, Any]]],
    carry: Carry,
    *,
    pool_size: int,
    log: logging.Logger | Any = _log,
    max_concurrency: int = 8,
    dry_run: bool = False,
    progress: BulkProgress | None = None,
    on_outcome: Callable[[ChangeOutcome], None] | None = None,
) -> BulkReport:
    """Apply many changes over one hook's session; every item ends in the report, none raises.

    ``resource_of`` turns one input item into the resource and its ``patch``/``desired`` change;
    ``carry`` (the hook's :meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry`) makes it,
    as it makes every change.
    Concurrency is capped at the connection pool size so no connection is opened and dropped.

    Changes of one resource (same :attr:`~airflow_provider_prefs.patching.changes.Resource.key`) are
    applied one after the other in input order; different resources run concurrently. A change
    followed by a later change of the same resource (within the lookahead) is guarded with ``test``
    ops even where it is idempotent, so that a late copy of it can never land over the later one;
    its guards come from the document the previous change of that resource left, when known. A
    change refused because someone changed the resource first is planned again (see
    :func:`~airflow_provider_prefs.patching.changes.carry_steps`) and counted in ``replanned``.

    :param progress: the run's checkpoint (see :mod:`airflow_provider_prefs.bulk.progress`): items
        an earlier try finished are skipped, items it left in flight are re-judged and their
        recorded operations resent only if they did not land; each new item's operations are
        stored before they are sent.
    :param on_outcome: called in the calling thread with each item's outcome as it finishes
        (not for skipped items); an applied outcome carries its resource's ``asset_uri``.
    """
    from airflow_provider_prefs.bulk.progress import BulkProgress

    if max_concurrency > pool_size:
        log.warning(
            "max_concurrency %d capped to the connection pool size %d (pool_size extra)", max_concurrency, pool_size
        )
        max_concurrency = pool_size
    if progress is None or dry_run:
        progress = BulkProgress(None)  # a dry run sends nothing, so it has nothing to remember
    resume = progress.resume
    report = BulkReport(**resume.counts) if progress.enabled else BulkReport()
    if progress.enabled and not resume.empty:
        log.info(
            "resuming: %d item(s) an earlier try left in flight are re-judged, %d it saw refused are planned "
            "anew, and the others it finished (through item #%d and %d beyond) are skipped",
            len(resume.inflight),
            len(resume.retry),
            resume.next - 1,
            len(resume.finished_above),
        )
    #: The document each resource was left in by its last change, kept only while a later one follows.
    documents: dict[Hashable, dict[str, Any]] = {}
    # One thread per connection, each planning or sending: an item whose intent is being stored holds no
    # thread (see .write_ahead), so with a checkpoint more items are started than sent at once, and the
    # store's latency overlaps the network instead of gating it.
    in_flight = RECORDED_AHEAD * max_concurrency if progress.enabled else 2 * max_concurrency

    workers = Workers(max_concurrency)
    writer: WriteAhead[_Carrying] = WriteAhead(
        lambda carrying, error: workers.submit(advance, carrying, error),
        batch=WRITE_BATCH_PER_CONNECTION * max_concurrency,
        low_water=WRITE_LOW_WATER_PER_CONNECTION * max_concurrency,
        max_wait=WRITE_GATHER_SECONDS,
    )

    def advance(carrying: _Carrying, error: BaseException | None) -> None:
        """Carry an item on until its next intent waits for the store (parked) or it ends."""
        work = carrying.work
        if carrying.steps is None:
            carrying.steps = item_steps(work, carry, progress, documents, dry_run=dry_run)
        else:
            writer.taken()
        try:
            pending = carrying.steps.throw(error) if error is not None else carrying.steps.send(None)
        except StopIteration as done:
            outcome, held = done.value
            try:
                progress.finish(work.index, work.digest, outcome.status, held=held)
            except Exception as exc:
                outcome = failed_outcome(work.label, exc)
            carrying.finish(outcome)
            return
        except Exception as exc:  # item_steps turns every error into an outcome; never leave an item open
            carrying.finish(failed_outcome(work.label, exc))
            return
        except BaseException as exc:  # stops the run, as it would in a thread of its own
            carrying.finish(exc)
            return
        writer.park(cast("IntentWrite", pending), carrying)

    def start(work: BulkItem, finish: Callable[[ChangeOutcome | BaseException], None]) -> None:
        workers.submit(advance, _Carrying(work, finish), None, first=True)

    try:
        with frozen_heap():
            report = run_ordered(
                with_resources(numbered(items, progress, report), resource_of),
                start,
                max_pending=lambda: progress.window(in_flight, 2 * max_concurrency),
                lookahead=LOOKAHEAD_PER_THREAD * in_flight if max_concurrency > 1 else 0,
                report=report,
                label=lambda work: work.label,
                on_outcome=on_outcome,
                key=lambda work: work.resource.key if work.resource is not None else None,
                dispatch=lambda work, later: dataclasses.replace(work, followed=later) if later else work,
            )
    finally:
        writer.close()
        workers.close()
    progress.flush()
    if progress.enabled:
        log.info("checkpoint: %d write(s) for %d item(s) sent", progress.writes, report.total - report.skipped)
    return report


@dataclass
class _Carrying:
    """An item being carried: where its outcome goes, and its steps once begun."""

    work: BulkItem
    finish: Callable[[ChangeOutcome | BaseException], None]
    steps: Generator[PendingRecord, None, tuple[ChangeOutcome, bool]] | None = None


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the garbage collector off the objects that exist when a run starts, until it ends.

    A task process holds hundreds of thousands of long-lived objects (Airflow, the DAG, the items),
    and every full collection walks them all: measured under ``airflow dags test``, 15 % of a
    10,000-item run's time. Frozen, they are left alone (they are not garbage: they outlive the run),
    and :func:`gc.unfreeze` hands them back at the end. Nested runs leave the heap frozen until the last ends.
    """
    global _freezes
    with _freeze_lock:
        if _freezes == 0:
            gc.freeze()
        _freezes += 1
    try:
        yield
    finally:
        with _freeze_lock:
            _freezes -= 1
            if _freezes == 0:
                gc.unfreeze()


_freeze_lock = threading.Lock()
_freezes = 0


def with_resources(
    works: Iterable[BulkItem], resource_of: Callable[[Any], tuple[Resource, dict[str, Any]]]
) -> Iterator[BulkItem]:
    """Each item with its resource and change (or the error that says why it has none)."""
    for work in works:
        if isinstance(work.item, BadItem):
            yield dataclasses.replace(work, error=work.item.error)
            continue
        try:
            resource, change = resource_of(work.item)
        except Exception as exc:
            yield dataclasses.replace(work, error=f"{type(exc).__name__}: {exc}")
            continue
        yield dataclasses.replace(work, resource=resource, change=change)


def item_steps(
    work: BulkItem,
    carry: Carry,
    progress: BulkProgress,
    documents: dict[Hashable, dict[str, Any]],
    *,
    dry_run: bool,
) -> Generator[PendingRecord, None, tuple[ChangeOutcome, bool]]:
    """One bulk item through the path of every change (``carry``: the hook's
    :meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry_steps`), its intent recorded in the run's
    progress; ends with its outcome and whether its recorded operations still stand.

    Yields where the item's intent waits for the store; never raises (an error is the item's failure row).
    """
    from airflow_provider_prefs.bulk.progress import ItemCheckpoint
    from airflow_provider_prefs.patching.changes import Change

    if work.resource is None:
        return ChangeOutcome(status="failed", target=work.label, error=work.error), False
    resource = work.resource
    checkpoint = ItemCheckpoint(progress, work.index, work.digest, resource, work.resumed_ops)
    change = Change(patch=work.change.get("patch"), desired=work.change.get("desired"))
    known = documents.pop(resource.key, None)
    if change.desired is not None:
        known = None  # a desired state is planned on a fresh read: a stale document could make it look done
    try:
        carried = yield from carry(
            resource,
            change,
            checkpoint=checkpoint,
            base=known if work.followed else None,
            pin_all=work.followed,
            dry_run=dry_run,
        )
    except Exception as exc:
        return failed_outcome(resource.target, exc), checkpoint.held
    if work.followed and carried.document is not None:
        documents[resource.key] = carried.document
    return carried.outcome, False


def max_window(max_pending: int) -> int:
    """How many items a run may read beyond its oldest unfinished one, with ``max_pending`` started at once."""
    return 4 * max(1, max_pending)


def numbered(items: Iterable[Any], progress: BulkProgress, report: BulkReport) -> Iterator[BulkItem]:
    """Number the items and apply the checkpoint: skip finished ones, re-judge in-flight ones, redo refused ones.

    Skipped items are counted into ``report`` (``skipped``, ``total``); re-judged ones into
    ``resumed``; refused ones planned anew into ``retried``. Raises
    :class:`~.progress.ItemsChangedError` (stopping the run) when the items are not those the
    checkpoint describes.
    """
    from airflow_provider_prefs.bulk.progress import _chain, item_digest

    resume = progress.resume
    chain = ""
    index = -1
    for index, item in enumerate(items):
        digest = item_digest(item) if progress.enabled else ""
        below = index < resume.next
        if index in resume.retry:
            report.retried += 1
            yield BulkItem(index, item, digest)  # refused (or never sent) by an earlier try: planned anew
        elif index in resume.inflight:
            recorded_digest, ops = resume.inflight[index]
            progress.check_digest(index, digest, recorded_digest)
            if below:
                chain = _chain(chain, digest)
            report.resumed += 1
            yield BulkItem(index, item, digest, resumed_ops=ops)
        elif below:
            if index not in resume.unchained:
                chain = _chain(chain, digest)
            report.skipped += 1
            report.total += 1
        elif index in resume.finished_above:
            progress.check_digest(index, digest, resume.finished_above[index])
            report.skipped += 1
            report.total += 1
        else:
            yield BulkItem(index, item, digest)
        if index == resume.next - 1:
            progress.verify_prefix(chain)
    if index + 1 < resume.next:
        progress.verify_prefix(chain)
