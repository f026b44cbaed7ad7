"""Daily refresh of a fallback offer: name and description from the desired state, plus one representation.

The first task states *what the offer should look like* (``desired``): the provider reads the offer,
computes the minimal JSON Patch, guards it with ``test`` ops, and sends nothing when it already
matches. The second task sends an explicit JSON Patch, templated with the run date.

The offer is the ``offer_id`` param (default: the sandbox's ``fallbackOffer1234``); trigger with
``{"offer_id": "..."}`` to refresh one of your account's offers (the connection
``adobe_offer_library_default`` says which org and sandbox). The representation patch expects a web
image offer: its ``test`` op refuses any other, and nothing is changed.

The run date is the logical date of a scheduled run, or ``run_after`` for a manual run triggered
without one (REST API, ``airflow dags trigger``): there the ``ds`` template variable is undefined.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_prefs.operators import FallbackOfferPatchOperator

with DAG(
    dag_id="scheduled_offer_refresh",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "offer_id": Param(
            "fallbackOffer1234",
            type="string",
            minLength=1,
            description="The fallback offer to refresh, in the org and sandbox of the connection.",
        ),
    },
    tags=["prefs", "example", "adobe"],
    doc_md=__doc__,
):
    refresh_copy = FallbackOfferPatchOperator(
        task_id="refresh_name_and_description",
        offer_id="{{ params.offer_id }}",
        desired={
            # The logical date of a scheduled run, or when a manual run was triggered.
            "name": "Seasonal fallback {{ (dag_run.logical_date or dag_run.run_after) | ds }}",
            "description": "Shown when no other offer qualifies. "
            "Refreshed by Airflow on {{ (dag_run.logical_date or dag_run.run_after) | ds }}.",
        },
    )
    refresh_image = FallbackOfferPatchOperator(
        task_id="refresh_representation",
        offer_id="{{ params.offer_id }}",
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
