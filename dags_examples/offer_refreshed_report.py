"""Runs whenever the fallback offer changed: scheduled on its Airflow asset, not on a clock.

Every provider operator that applies a change emits an asset event for what it changed (a dry run or
an offer that already matched emits none). The offer's asset is
``adobe-offer://{IMS org}/{sandbox}/{offer id}`` (the org's ``@`` percent-encoded), so this DAG runs
after each ``scheduled_offer_refresh`` that changed ``fallbackOffer1234`` in the sandbox org
``DEMO123@AdobeOrg``, sandbox ``dev``. Here it reads the offer back and reports what it now says.

A schedule is fixed when the file is parsed, before any run has params: the asset comes from the
constants below (the sandbox's ids), so set them to your org, sandbox and offer to follow one of your
offers. The offer read back is the ``offer_id`` param, whose default is the scheduled offer; a manual
run can name another one (``{"offer_id": "..."}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_prefs.assets import offer_asset_uri

#: The offer followed: the connection's ``ims_org_id`` and ``sandbox_name``, and the offer id.
IMS_ORG_ID = "DEMO123@AdobeOrg"
SANDBOX_NAME = "dev"
OFFER_ID = "fallbackOffer1234"
#: The same URI the operators emit; ``offer_asset_uri`` builds it from the connection's values.
FALLBACK_OFFER = Asset(uri=offer_asset_uri(IMS_ORG_ID, SANDBOX_NAME, OFFER_ID))

with DAG(
    dag_id="offer_refreshed_report",
    schedule=[FALLBACK_OFFER],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "offer_id": Param(
            OFFER_ID,
            type="string",
            minLength=1,
            description="The offer read back, in the org and sandbox of the connection (default: the scheduled one).",
        ),
    },
    tags=["prefs", "example", "adobe", "assets"],
    doc_md=__doc__,
):

    @task
    def report_offer(offer_id: str, triggering_asset_events: Any = None) -> dict[str, Any]:
        """Log which runs changed the offer, read it back, return a small summary (XCom)."""
        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        # Keyed by the asset and by the alias it was emitted through: the same event can appear twice.
        changes = {
            (event.asset.uri, event.source_dag_id, event.source_task_id, event.source_run_id, str(event.timestamp))
            for found in (triggering_asset_events or {}).values()
            for event in found
        }
        for uri, dag_id, task_id, run_id, _ in sorted(changes):
            print(f"{uri} changed by {dag_id}.{task_id} ({run_id})")
        hook = OfferLibraryHook()
        try:
            offer = hook.get_offer(offer_id)
        finally:
            hook.close()
        return {"name": offer.get("name"), "etag": offer.get("etag")}

    report_offer(offer_id="{{ params.offer_id }}")  # TaskFlow arguments are templated
