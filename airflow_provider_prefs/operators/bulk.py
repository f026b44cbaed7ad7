"""Operators that apply thousands of patches in one task, with bounded concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_prefs._compat import BaseOperator, fail_task_exception
from airflow_provider_prefs.provider_info import ADOBE_CONN_TYPE, MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
    from airflow_provider_prefs.models import BulkReport

#: Failures spelled out in the task's error message (all are in the XCom report, up to its cap).
FAILURES_IN_MESSAGE = 20


def iter_items(items: Any) -> Iterator[Any]:
    """Items from a list, or streamed line by line from a JSON Lines file (``*.jsonl`` path)."""
    if isinstance(items, str | Path) and str(items).endswith(".jsonl"):
        with open(items, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        yield {"invalid_line": number, "error": str(exc)}
        return
    if isinstance(items, str):
        items = json.loads(items)
    yield from items


class BulkPatchOperatorBase(BaseOperator):
    """Shared base of the bulk operators (see BulkProfilePatchOperator, BulkFallbackOfferPatchOperator).

    Every item is attempted; at the end the task fails (without retries, since a retry would resend
    the items that did apply) if any item failed, listing what failed and why. The report
    ``{"total", "applied", "unchanged", "failed", "failures": [...]}`` is the XCom return value on
    success and is pushed under the key ``bulk_report`` either way.

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

    def run_bulk(self, items: Iterator[Any]) -> BulkReport:
        """Apply the items through the service hook."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        """Apply every item, report, and fail at the end if any item failed."""
        report = self.run_bulk(iter_items(self.items))
        summary = report.to_xcom()
        self.log.info(
            "bulk patch: %d item(s): %d applied, %d unchanged, %d failed",
            report.total,
            report.applied,
            report.unchanged,
            report.failed,
        )
        ti = context.get("ti") if isinstance(context, dict) else None
        if ti is not None:
            ti.xcom_push(key="bulk_report", value=summary)
        if report.failed and self.fail_on_error:
            lines = [f"  {f.target}: {f.error}" for f in report.failures[:FAILURES_IN_MESSAGE]]
            more = report.failed - len(lines)
            raise fail_task_exception()(
                f"{report.failed} of {report.total} item(s) failed ({report.applied} applied, "
                f"{report.unchanged} unchanged):\n" + "\n".join(lines) + (f"\n  ... and {more} more" if more else "")
            )
        return summary


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

    def run_bulk(self, items: Iterator[Any]) -> BulkReport:
        """Patch the profiles."""
        return self.hook.bulk_patch_profiles(
            items,
            alternate_id_type=self.alternate_id_type,
            max_concurrency=self.max_concurrency,
            dry_run=self.is_dry_run,
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

    def run_bulk(self, items: Iterator[Any]) -> BulkReport:
        """Patch the offers."""
        return self.hook.bulk_patch_offers(items, max_concurrency=self.max_concurrency, dry_run=self.is_dry_run)
