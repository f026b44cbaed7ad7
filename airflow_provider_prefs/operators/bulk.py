"""Operators that apply thousands of patches in one task, with bounded concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_prefs.provider_info import ADOBE_CONN_TYPE, MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.progress import BulkProgress
    from airflow_provider_prefs.hooks.base import PrefsApiHook
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
    from airflow_provider_prefs.models import BulkReport

#: Failures spelled out in the task's error message (all are in the XCom report, up to its cap).
FAILURES_IN_MESSAGE = 20
#: Namespace of the bulk run's progress in the task state store.
CHECKPOINT_NAMESPACE = "prefs.bulk"


def open_items(items: Any) -> Iterator[Any]:
    """The items of a bulk task, checked before any request: a list (or other iterable), its JSON
    text, or the path of a ``.jsonl`` file (streamed; a line that is not JSON becomes that line's
    failure row). Anything unusable raises :class:`InvalidInputError` here, before anything is sent.
    """
    from airflow_provider_prefs.bulk.runner import quote_item
    from airflow_provider_prefs.errors import InvalidInputError

    if isinstance(items, str | Path) and str(items).endswith(".jsonl"):
        path = Path(items)
        if not path.is_file():
            raise InvalidInputError(f"items names a .jsonl file that does not exist: {quote_item(str(items))}")
        return _jsonl_items(path)
    if isinstance(items, str | bytes):
        try:
            items = json.loads(items)
        except ValueError as exc:
            raise InvalidInputError(
                f"items is not a list, JSON text of a list, or a .jsonl path: {quote_item(items)} ({exc})"
            ) from None
    if isinstance(items, dict | str | bytes) or not isinstance(items, Iterable):
        raise InvalidInputError(f"items must be a list of items, got {type(items).__name__}: {quote_item(items)}")
    return iter(items)


def _jsonl_items(path: Path) -> Iterator[Any]:
    from airflow_provider_prefs.bulk.runner import BadItem

    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    yield BadItem(f"{path.name} line {number}", f"line {number} is not valid JSON: {exc}")


class BulkPatchOperatorBase(BaseOperator):
    """Shared base of the bulk operators (see BulkProfilePatchOperator, BulkFallbackOfferPatchOperator).

    Every item is attempted; an item that fails, for whatever reason, becomes a failure row and the
    others go on. The report ``{"total", "applied", "unchanged", "failed", "failures": [...],
    "skipped", "resumed"}`` is pushed under the XCom key ``bulk_report`` whatever happens, and is the
    return value on success. At the end the task fails if any item failed, listing what failed and
    why; without retries, since a retry would reach the same verdict.

    Progress is checkpointed in Airflow's task state store (Airflow 3.3+): each item's exact
    operations are stored before they are sent, so a retry, or a rerun of the task instance after the
    worker was killed, skips the items already finished and re-judges those that were in flight
    instead of sending anything twice. Give bulk tasks ``retries`` freely. Without a task state store
    there is no such memory: an unexpected error then fails the task without retries, because a
    retry would resend the items that did apply.

    :param items: a list of items, its JSON text, or the path of a ``.jsonl`` file (streamed).
    :param max_concurrency: patches in flight at once (capped at the connection's ``pool_size``).
    :param dry_run: plan and log every change, send none.
    :param fail_on_error: fail the task when any item failed (default) instead of only reporting.
    """

    template_fields: Sequence[str] = ("items", "conn_id")
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        items: Any,
        conn_id: str,
        max_concurrency: int = 8,
        dry_run: bool = False,
        fail_on_error: bool = True,
        transport: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.conn_id = conn_id
        self.max_concurrency = max_concurrency
        self.is_dry_run = dry_run
        self.fail_on_error = fail_on_error
        self.transport = transport

    @property
    def service_hook(self) -> PrefsApiHook:
        """The hook the items are applied through."""
        raise NotImplementedError

    def run_bulk(self, items: Iterator[Any], progress: BulkProgress) -> BulkReport:
        """Apply the items through the service hook."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        """Apply every item (resuming an earlier try), push the report, fail at the end if any item failed."""
        from airflow_provider_prefs.bulk.progress import BulkProgress
        from airflow_provider_prefs.bulk.runner import failed_outcome
        from airflow_provider_prefs.errors import PrefsError
        from airflow_provider_prefs.models import BulkReport
        from airflow_provider_prefs.operators.checkpoint import TaskCheckpoint

        try:
            items = open_items(self.items)
        except PrefsError as exc:
            raise AirflowFailException(str(exc)) from exc
        progress = BulkProgress(TaskCheckpoint.from_context(context, CHECKPOINT_NAMESPACE, log=self.log))
        try:
            report = self.run_bulk(items, progress)
        except Exception as exc:
            # Not an item's failure (those never raise) but the run's: still leave a report behind.
            report = BulkReport(failures=[failed_outcome("bulk run", exc)])
            self._push(context, report)
            if isinstance(exc, PrefsError) and not exc.retryable:
                raise AirflowFailException(str(exc)) from exc
            if not progress.enabled:
                raise AirflowFailException(
                    f"{type(exc).__name__}: {exc} (not retried: without a task state store a retry would "
                    "resend the items that were applied)"
                ) from exc
            raise
        finally:
            self.service_hook.close()
        self._push(context, report)
        self.log.info(
            "bulk patch: %d item(s): %d applied, %d unchanged, %d failed; %d skipped (finished by an earlier "
            "try), %d resumed",
            report.total,
            report.applied,
            report.unchanged,
            report.failed,
            report.skipped,
            report.resumed,
        )
        if report.failed and self.fail_on_error:
            lines = [f"  {f.target}: {f.error}" for f in report.failures[:FAILURES_IN_MESSAGE]]
            more = report.failed - len(lines)
            raise AirflowFailException(
                f"{report.failed} of {report.total} item(s) failed ({report.applied} applied, "
                f"{report.unchanged} unchanged):\n" + "\n".join(lines) + (f"\n  ... and {more} more" if more else "")
            )
        progress.forget()
        return report.to_xcom()

    @staticmethod
    def _push(context: Any, report: BulkReport) -> None:
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key="bulk_report", value=report.to_xcom())


class BulkProfilePatchOperator(BulkPatchOperatorBase):
    """Patch many MyPreferences profiles in one task over one HTTP session.

    Items: ``{"alternate_id", "alternate_id_type"?, "patch" | "desired"}`` dicts, or
    ``[alternate_id, patch]`` pairs using ``alternate_id_type`` given here.

    :param alternate_id_type: default type for items that do not name one.
    :param conn_id: connection of type ``mypreferences``.
    """

    template_fields: Sequence[str] = (*BulkPatchOperatorBase.template_fields, "alternate_id_type")

    def __init__(
        self,
        *,
        conn_id: str = f"{MYPREFERENCES_CONN_TYPE}_default",
        alternate_id_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.alternate_id_type = alternate_id_type

    @cached_property
    def hook(self) -> MyPreferencesHook:
        """The MyPreferences hook."""
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

        return MyPreferencesHook(self.conn_id, transport_overrides=self.transport)

    @property
    def service_hook(self) -> PrefsApiHook:
        """The MyPreferences hook."""
        return self.hook

    def run_bulk(self, items: Iterator[Any], progress: BulkProgress) -> BulkReport:
        """Patch the profiles."""
        return self.hook.bulk_patch_profiles(
            items,
            alternate_id_type=self.alternate_id_type,
            max_concurrency=self.max_concurrency,
            dry_run=self.is_dry_run,
            progress=progress,
        )


class BulkFallbackOfferPatchOperator(BulkPatchOperatorBase):
    """Patch many fallback offers in one task over one HTTP session.

    Items: ``{"offer_id", "patch" | "desired"}`` dicts or ``[offer_id, patch]`` pairs.

    :param conn_id: connection of type ``adobe_offer_library``.
    """

    def __init__(self, *, conn_id: str = f"{ADOBE_CONN_TYPE}_default", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)

    @cached_property
    def hook(self) -> OfferLibraryHook:
        """The Offer Library hook."""
        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        return OfferLibraryHook(self.conn_id, transport_overrides=self.transport)

    @property
    def service_hook(self) -> PrefsApiHook:
        """The Offer Library hook."""
        return self.hook

    def run_bulk(self, items: Iterator[Any], progress: BulkProgress) -> BulkReport:
        """Patch the offers."""
        return self.hook.bulk_patch_offers(
            items, max_concurrency=self.max_concurrency, dry_run=self.is_dry_run, progress=progress
        )
