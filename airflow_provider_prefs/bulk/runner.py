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

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_prefs.models import BulkReport, PatchOutcome

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.progress import BulkProgress
    from airflow_provider_prefs.patching.changes import Resource

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


def failed_outcome(target: str, exc: BaseException) -> PatchOutcome:
    """The outcome recorded for an item that could not be applied (message bounded)."""
    error = f"{type(exc).__name__}: {exc}"
    if len(error) > 4 * MAX_QUOTED_CHARS:
        error = error[: 4 * MAX_QUOTED_CHARS - 3] + "..."
    return PatchOutcome(status="failed", target=target[: 2 * MAX_QUOTED_CHARS], error=error)


def _guarded(handle: Callable[[Any], PatchOutcome], label: Callable[[Any], str]) -> Callable[[Any], PatchOutcome]:
    """``handle`` that turns any exception into the item's failure row (a thread pool would re-raise it)."""

    def run(item: Any) -> PatchOutcome:
        try:
            return handle(item)
        except Exception as exc:
            return failed_outcome(label(item), exc)

    return run


def run_bulk(
    items: Iterable[Any],
    handle: Callable[[Any], PatchOutcome],
    *,
    max_concurrency: int = 8,
    on_outcome: Callable[[PatchOutcome], None] | None = None,
    report: BulkReport | None = None,
    label: Callable[[Any], str] = quote_item,
) -> BulkReport:
    """Run ``handle`` over ``items`` with at most ``max_concurrency`` in flight; fold into a report.

    Never raises for an item: an exception from ``handle`` becomes that item's failure row, and an
    exception while reading ``items`` stops reading (the items already started still finish) and is
    reported as a failure row too.
    """
    report = report if report is not None else BulkReport()
    safe = _guarded(handle, label)

    def record(outcome: PatchOutcome) -> None:
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

    if max_concurrency <= 1:
        for item in pulled():
            record(safe(item))
        return report

    # Never run further ahead of the oldest unfinished item than this: a slow item holds the run back
    # a little instead of letting the checkpoint's "finished above the watermark" set grow unbounded.
    max_ahead = max_window(max_concurrency)
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="prefs-bulk") as pool:
        pending: set[Future[PatchOutcome]] = set()
        order: deque[tuple[int, Future[PatchOutcome]]] = deque()
        for sequence, item in enumerate(pulled()):
            while len(pending) >= 2 * max_concurrency or (order and sequence - order[0][0] >= max_ahead):
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
                while order and order[0][1] not in pending:
                    order.popleft()
            future = pool.submit(safe, item)
            pending.add(future)
            order.append((sequence, future))
        for _, future in order:
            if future in pending:
                record(future.result())
    return report


class BulkOptions(TypedDict, total=False):
    """How a bulk run goes, the same for every service (the keyword arguments of :func:`apply_changes`)."""

    #: Items in flight at once; capped at the connection pool size.
    max_concurrency: int
    #: Preview every item; send nothing (and record nothing).
    dry_run: bool
    #: The run's checkpoint (see :mod:`airflow_provider_prefs.bulk.progress`).
    progress: BulkProgress | None
    #: Called in the calling thread with each item's outcome as it finishes (not for skipped items).
    on_outcome: Callable[[PatchOutcome], None] | None


def apply_changes(
    items: Iterable[Any],
    resource_of: Callable[[Any], tuple[Resource, dict[str, Any]]],
    *,
    pool_size: int,
    log: logging.Logger | Any = _log,
    max_concurrency: int = 8,
    dry_run: bool = False,
    progress: BulkProgress | None = None,
    on_outcome: Callable[[PatchOutcome], None] | None = None,
) -> BulkReport:
    """Apply many changes over one hook's session; every item ends in the report, none raises.

    ``resource_of`` turns one input item into the resource and its ``patch``/``desired`` change.
    Concurrency is capped at the connection pool size so no connection is opened and dropped.

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
            "resuming: %d item(s) finished by an earlier try are skipped, %d in flight are re-judged",
            resume.next + len(resume.finished_above),
            len(resume.inflight),
        )

    def handle(work: BulkItem) -> PatchOutcome:
        outcome = apply_item(work, resource_of, progress, dry_run=dry_run, log=log)
        progress.finish(work.index, work.digest, outcome.status)
        return outcome

    report = run_bulk(
        numbered(items, progress, report),
        handle,
        max_concurrency=max_concurrency,
        report=report,
        label=lambda work: work.label,
        on_outcome=on_outcome,
    )
    progress.flush()
    if progress.enabled:
        log.info("checkpoint: %d write(s) for %d item(s) sent", progress.writes, report.total - report.skipped)
    return report


def apply_item(
    work: BulkItem,
    resource_of: Callable[[Any], tuple[Resource, dict[str, Any]]],
    progress: BulkProgress,
    *,
    dry_run: bool,
    log: logging.Logger | Any = _log,
) -> PatchOutcome:
    """One bulk item: plan, record the intent, send; or, resumed, re-judge and resend the recorded ops."""
    from airflow_provider_prefs.patching.changes import PlannedChange, plan_change, send_change
    from airflow_provider_prefs.patching.resume import resume_change

    if isinstance(work.item, BadItem):
        return PatchOutcome(status="failed", target=work.label, error=work.item.error)
    target = work.label
    try:
        resource, change = resource_of(work.item)
        target = resource.target
        if work.resumed_ops is not None:
            outcome = resume_change(resource, PlannedChange(ops=work.resumed_ops), log=log)
        else:
            planned = plan_change(resource, patch=change.get("patch"), desired=change.get("desired"))
            if not planned.unchanged and not dry_run:
                progress.begin(work.index, work.digest, planned.ops)
            outcome = send_change(resource, planned, dry_run=dry_run)
    except Exception as exc:
        return failed_outcome(target, exc)
    return outcome.model_copy(update={"asset_uri": resource.asset_uri}) if outcome.status == "applied" else outcome


def max_window(max_concurrency: int) -> int:
    """How many items a run may start beyond its oldest unfinished one."""
    return 8 * max(1, max_concurrency)


def numbered(items: Iterable[Any], progress: BulkProgress, report: BulkReport) -> Iterator[BulkItem]:
    """Number the items and apply the checkpoint: skip finished ones, resume in-flight ones.

    Skipped items are counted into ``report`` (``skipped``, ``total``); resumed ones into ``resumed``.
    Raises :class:`~.progress.ItemsChangedError` (stopping the run) when the items are not those
    the checkpoint describes.
    """
    from airflow_provider_prefs.bulk.progress import _chain, item_digest

    resume = progress.resume
    chain = ""
    index = -1
    for index, item in enumerate(items):
        digest = item_digest(item) if progress.enabled else ""
        if index < resume.next:
            chain = _chain(chain, digest)
            if index == resume.next - 1:
                progress.verify_prefix(chain)
            report.skipped += 1
            report.total += 1
            continue
        if index in resume.finished_above:
            progress.check_digest(index, digest, resume.finished_above[index])
            report.skipped += 1
            report.total += 1
            continue
        if index in resume.inflight:
            recorded_digest, ops = resume.inflight[index]
            progress.check_digest(index, digest, recorded_digest)
            report.resumed += 1
            yield BulkItem(index, item, digest, resumed_ops=ops)
            continue
        yield BulkItem(index, item, digest)
    if index + 1 < resume.next:
        progress.verify_prefix(chain)
