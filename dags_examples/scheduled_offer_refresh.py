"""Daily refresh of a fallback offer: name and description from the desired state, plus one representation.

The first task states *what the offer should look like* (``desired``): the provider reads the offer,
computes the minimal JSON Patch, guards it with ``test`` ops, and sends nothing when it already
matches. The second task sends an explicit JSON Patch, templated with the run date.

The run date is the logical date of a scheduled run, or ``run_after`` for a manual run triggered
without one (REST API, ``airflow dags trigger``): there the ``ds`` template variable is undefined.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_prefs.operators import FallbackOfferPatchOperator

with DAG(
    dag_id="scheduled_offer_refresh",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["prefs", "example", "adobe"],
    doc_md=__doc__,
):
    refresh_copy = FallbackOfferPatchOperator(
        task_id="refresh_name_and_description",
        offer_id="fallbackOffer1234",
        desired={
            # The logical date of a scheduled run, or when a manual run was triggered.
            "name": "Seasonal fallback {{ (dag_run.logical_date or dag_run.run_after) | ds }}",
            "description": "Shown when no other offer qualifies. "
            "Refreshed by Airflow on {{ (dag_run.logical_date or dag_run.run_after) | ds }}.",
        },
    )
    refresh_image = FallbackOfferPatchOperator(
        task_id="refresh_representation",
        offer_id="fallbackOffer1234",
        patch=[
            {"op": "test", "path": "/representations/0/channel", "value": "https://ns.adobe.com/xdm/channel-types/web"},
            {
                "op": "replace",
                "path": "/representations/0/components/0/deliveryURL",
                "value": "https://cdn.example.com/fallback/"
                "{{ (dag_run.logical_date or dag_run.run_after) | ds_nodash }}.png",
            },
        ],
    )
    refresh_copy >> refresh_image
