"""Many changes with bounded concurrency over one hook (one session, one pool, one 429 gate).

Input is consumed lazily and results are folded into counters as they arrive, so memory stays flat
whether there are ten items or a million. A failed item never stops the others; the caller decides
at the end what the failures mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from airflow_provider_prefs.models import BulkReport, PatchOutcome

log = logging.getLogger(__name__)

#: How many failures a report lists in full; the rest are only counted.
MAX_LISTED_FAILURES = 100


def run_bulk(
    items: Iterable[Any],
    handle: Callable[[Any], PatchOutcome],
    *,
    max_concurrency: int = 8,
    on_outcome: Callable[[PatchOutcome], None] | None = None,
) -> BulkReport:
    """Run ``handle`` over ``items`` with at most ``max_concurrency`` in flight; fold into a report."""
    report = BulkReport()

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

    if max_concurrency <= 1:
        for item in items:
            record(handle(item))
        return report

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="prefs-bulk") as pool:
        pending: set[Future[PatchOutcome]] = set()
        for item in items:
            if len(pending) >= 2 * max_concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
            pending.add(pool.submit(handle, item))
        for future in pending:
            record(future.result())
    return report


def failed_outcome(target: str, exc: BaseException) -> PatchOutcome:
    """The outcome recorded for an item that could not be applied."""
    return PatchOutcome(status="failed", target=target, error=f"{type(exc).__name__}: {exc}")
