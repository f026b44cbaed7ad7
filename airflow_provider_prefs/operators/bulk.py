"""Operators that apply thousands of patches in one task, with bounded concurrency."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefs.assets import OFFER_CHANGES_ALIAS, PROFILE_CHANGES_ALIAS, ChangedAssets
from airflow_provider_prefs.operators.base import ChangeOperatorBase
from airflow_provider_prefs.operators.storage import ItemReport, open_items
from airflow_provider_prefs.provider_info import ADOBE_CONN_TYPE, MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.bulk.runner import BulkOptions
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
    from airflow_provider_prefs.models import BulkReport, ChangeOutcome

#: Failures spelled out in the task's error message (all are in the XCom report, up to its cap).
FAILURES_IN_MESSAGE = 20
#: Namespace of the bulk run's progress in the task state store.
CHECKPOINT_NAMESPACE = "prefs.bulk"


class BulkPatchOperatorBase(ChangeOperatorBase):
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

    Every applied item's asset (its offer, or its account and alternate id type) gets one Airflow
    asset event through the alias :attr:`changes_alias` the operator declares as outlet: one per
    distinct asset, at most :data:`~airflow_provider_prefs.assets.MAX_ASSET_EVENTS` per task. The
    same assets are the task's OpenLineage outputs. A dry run emits none.

    :param items: a list of items, its JSON text, or a JSON Lines file (streamed line by line): a
        local ``*.jsonl`` path, a URI (``file://``, ``s3://``, ``memory://``...) or an
        :class:`airflow.sdk.ObjectStoragePath`; or an XComArg giving one of these. A string is
        rendered as a template; the items of a list are not (they are data, and rendering
        thousands of them would delay the task by seconds).
    :param report_path: where to write one JSON line per item, ``{"target", "status", "error"}``
        (path, URI or ``ObjectStoragePath``; truncated first). The XCom report only counts and lists
        the first failures; this is the full record. A retry that resumes writes the items it handled.
    :param max_concurrency: patches in flight at once (capped at the connection's ``pool_size``).
    :param dry_run: plan and log every change, send none.
    :param fail_on_error: fail the task when any item failed (default) instead of only reporting.
    """

    template_fields: Sequence[str] = ("items", "conn_id", "report_path")
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        items: Any,
        max_concurrency: int = 8,
        fail_on_error: bool = True,
        report_path: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.report_path = report_path
        self.max_concurrency = max_concurrency
        self.fail_on_error = fail_on_error

    def apply_items(self, items: Iterator[Any], options: BulkOptions) -> BulkReport:
        """Apply the items through the service hook's bulk method with these run options."""
        raise NotImplementedError

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the template fields, except the contents of ``items`` given as a list or tuple.

        ``items`` as a string (JSON text, a path, a URI) or an ``ObjectStoragePath`` is rendered, and
        an XComArg is resolved, as usual; but a list is used as it is: rendering walks every string
        of every item (about a second per thousand items), and a feed's values are data, not templates.
        """
        if not isinstance(self.items, list | tuple):
            super().render_template_fields(context, jinja_env)
            return
        fields = [name for name in self.template_fields if name != "items"]
        self._do_render_template_fields(self, fields, context, jinja_env or self.get_template_env(), set())

    def execute(self, context: Any) -> dict[str, Any]:
        """Apply every item (resuming an earlier try), push the report, fail at the end if any item failed."""
        from airflow_provider_prefs.bulk.progress import BulkProgress
        from airflow_provider_prefs.bulk.runner import failed_outcome
        from airflow_provider_prefs.errors import PrefsError
        from airflow_provider_prefs.models import BulkReport
        from airflow_provider_prefs.patching.checkpoint import TaskCheckpoint

        try:
            items = open_items(self.items)
        except PrefsError as exc:
            raise AirflowFailException(str(exc)) from exc
        progress = BulkProgress(TaskCheckpoint.from_context(context, CHECKPOINT_NAMESPACE, log=self.log))
        self.changed_assets = ChangedAssets()
        try:
            with self._item_report() as item_report:
                options: BulkOptions = {
                    "max_concurrency": self.max_concurrency,
                    "dry_run": self.is_dry_run,
                    "progress": progress,
                    "on_outcome": lambda outcome: self._record(outcome, item_report),
                }
                report = self.apply_items(items, options)
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
            self.hook.close()
        self._push(context, report)
        self.changed_assets.emit(context, self.changes_alias, self.log)
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
        return self._xcom(report)

    def _item_report(self) -> Any:
        from contextlib import nullcontext

        return ItemReport(self.report_path) if self.report_path else nullcontext()

    def _record(self, outcome: ChangeOutcome, item_report: ItemReport | None) -> None:
        # Called in the task's thread as each item finishes (see bulk.runner.apply_changes).
        if item_report is not None:
            item_report.write(outcome)
        if outcome.status == "applied":
            self.changed_assets.add(outcome.asset_uri)

    def _xcom(self, report: BulkReport) -> dict[str, Any]:
        result = report.to_xcom()
        if self.report_path:
            result["report_path"] = str(self.report_path)
        return result

    def _push(self, context: Any, report: BulkReport) -> None:
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key="bulk_report", value=self._xcom(report))


class BulkProfilePatchOperator(BulkPatchOperatorBase):
    """Patch many MyPreferences profiles in one task over one HTTP session.

    Items: ``{"alternate_id", "alternate_id_type"?, "patch" | "desired"}`` dicts, or
    ``[alternate_id, patch]`` pairs using ``alternate_id_type`` given here.

    :param alternate_id_type: default type for items that do not name one.
    :param conn_id: connection of type ``mypreferences``.
    """

    template_fields: Sequence[str] = (*BulkPatchOperatorBase.template_fields, "alternate_id_type")
    changes_alias = PROFILE_CHANGES_ALIAS

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

    def apply_items(self, items: Iterator[Any], options: BulkOptions) -> BulkReport:
        """Patch the profiles."""
        return self.hook.bulk_patch_profiles(items, alternate_id_type=self.alternate_id_type, **options)


class BulkFallbackOfferPatchOperator(BulkPatchOperatorBase):
    """Patch many fallback offers in one task over one HTTP session.

    Items: ``{"offer_id", "patch" | "desired"}`` dicts or ``[offer_id, patch]`` pairs.

    :param conn_id: connection of type ``adobe_offer_library``.
    """

    changes_alias = OFFER_CHANGES_ALIAS

    def __init__(self, *, conn_id: str = f"{ADOBE_CONN_TYPE}_default", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)

    @cached_property
    def hook(self) -> OfferLibraryHook:
        """The Offer Library hook."""
        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        return OfferLibraryHook(self.conn_id, transport_overrides=self.transport)

    def apply_items(self, items: Iterator[Any], options: BulkOptions) -> BulkReport:
        """Patch the offers."""
        return self.hook.bulk_patch_offers(items, **options)
