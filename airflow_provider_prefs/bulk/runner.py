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

import dataclasses
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_prefs.models import BulkReport, ChangeOutcome

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.progress import BulkProgress
    from airflow_provider_prefs.patching.changes import Carried, Resource

    #: How a hook carries out one change (:meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry`).
    Carry = Callable[..., Carried]

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
    report = report if report is not None else BulkReport()
    safe = _guarded(handle, label)
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

    with ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="prefs-bulk") as pool:
        _OrderedDispatcher(pool, safe, record, key_of, dispatch, max(1, max_concurrency)).run(pulled())
    return report


#: With a checkpoint, items planned (their intents being stored, or stored) per connection: while one
#: window is on the wire, the next one's intents are written in one group-committed write. Sized so that
#: a store call of ~30 ms (a busy execution API) still overlaps the sends of a nearby service. A resumed
#: try re-judges at most this many items per ``max_concurrency`` (96 at the default 8).
RECORDED_AHEAD = 12

#: The longest a checkpoint write waits to gather a batch of intents (see :class:`~.progress.BulkProgress`).
WRITE_GATHER_SECONDS = 0.02

#: A checkpoint write gathers at least this many intents per connection (or waits WRITE_GATHER_SECONDS).
WRITE_BATCH_PER_CONNECTION = 3

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
        pool: ThreadPoolExecutor,
        handle: Callable[[Any], ChangeOutcome],
        record: Callable[[ChangeOutcome], None],
        key_of: Callable[[Any], Hashable | None],
        dispatch: Callable[[Any, bool], Any] | None,
        threads: int,
    ) -> None:
        self.pool, self.handle, self.record, self.key_of, self.dispatch = pool, handle, record, key_of, dispatch
        self.max_pending = 2 * threads
        self.window = max_window(threads)
        self.lookahead = LOOKAHEAD_PER_THREAD * threads if threads > 1 else 0
        self.buffer: deque[tuple[int, Any, Hashable | None]] = deque()
        self.waiting: dict[Hashable, deque[tuple[int, Any]]] = {}
        #: Items of each key read and not yet handed to a thread (buffer and waiting).
        self.queued: Counter[Hashable] = Counter()
        self.pending: dict[Future[ChangeOutcome], tuple[int, Hashable | None]] = {}
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
                    and len(self.pending) < self.max_pending
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
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: self.pending[f][0]):  # in input order, where there is a choice
                self._finished(future)

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
        self.pending[self.pool.submit(self.handle, work)] = (seq, key)

    def _finished(self, future: Future[ChangeOutcome]) -> None:
        seq, key = self.pending.pop(future)
        self.record(future.result())
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
    :func:`~airflow_provider_prefs.patching.changes.carry_out`) and counted in ``replanned``.

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
    # At most ``max_concurrency`` requests at once (one per connection); with a checkpoint, more items are
    # planned and wait for their intents to be stored meanwhile, holding no connection, so the store's
    # latency overlaps the network instead of gating it.
    connections = threading.BoundedSemaphore(max_concurrency)
    planned_at_once = RECORDED_AHEAD * max_concurrency if progress.enabled else max_concurrency
    # Each store write costs the api-server and the task's supervisor CPU on the machines that also send:
    # a write covers at least WRITE_BATCH_PER_CONNECTION connections' worth of intents, or waits for them
    # WRITE_GATHER_SECONDS at most.
    progress.batch, progress.batch_wait = WRITE_BATCH_PER_CONNECTION * max_concurrency, WRITE_GATHER_SECONDS

    def handle(work: BulkItem) -> ChangeOutcome:
        outcome, held = apply_item(work, carry, progress, documents, connections, dry_run=dry_run)
        progress.finish(work.index, work.digest, outcome.status, held=held)
        return outcome

    report = run_bulk(
        with_resources(numbered(items, progress, report), resource_of),
        handle,
        max_concurrency=planned_at_once,
        report=report,
        label=lambda work: work.label,
        on_outcome=on_outcome,
        key=lambda work: work.resource.key if work.resource is not None else None,
        dispatch=lambda work, later: dataclasses.replace(work, followed=later) if later else work,
    )
    progress.flush()
    if progress.enabled:
        log.info("checkpoint: %d write(s) for %d item(s) sent", progress.writes, report.total - report.skipped)
    return report


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


def apply_item(
    work: BulkItem,
    carry: Carry,
    progress: BulkProgress,
    documents: dict[Hashable, dict[str, Any]],
    connections: threading.BoundedSemaphore,
    *,
    dry_run: bool,
) -> tuple[ChangeOutcome, bool]:
    """One bulk item through the path of every change (``carry``: the hook's
    :meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry`), its intent recorded in the run's
    progress; returns its outcome and whether its recorded operations still stand.

    Each request takes one of the run's ``connections`` for its duration only: planning and storing
    the intent hold none, so more items are planned than sent at once.
    """
    from airflow_provider_prefs.bulk.progress import ItemCheckpoint
    from airflow_provider_prefs.patching.changes import Change

    if work.resource is None:
        return ChangeOutcome(status="failed", target=work.label, error=work.error), False
    resource = dataclasses.replace(
        work.resource, read=_holding(connections, work.resource.read), send=_holding(connections, work.resource.send)
    )
    checkpoint = ItemCheckpoint(progress, work.index, work.digest, resource, work.resumed_ops)
    change = Change(patch=work.change.get("patch"), desired=work.change.get("desired"))
    known = documents.pop(resource.key, None)
    if change.desired is not None:
        known = None  # a desired state is planned on a fresh read: a stale document could make it look done
    try:
        carried = carry(
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


def _holding(connections: threading.BoundedSemaphore, call: Callable[..., Any]) -> Callable[..., Any]:
    def held(*args: Any) -> Any:
        with connections:
            return call(*args)

    return held


def max_window(max_concurrency: int) -> int:
    """How many items a run may start beyond its oldest unfinished one."""
    return 8 * max(1, max_concurrency)


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
