"""Sync one customer's preferences to MyPreferences, then wait until the update is processed.

``compute_preferences`` stands in for your source of truth (a warehouse query, a CRM export); its
XCom feeds the patch operator's templated ``desired`` field. MyPreferences processes updates
asynchronously, so the deferrable sensor waits for ``UpdateStatus == Complete`` in the triggerer,
holding no worker slot. ``set_customer_type`` shows the shorter form: a patch operator that waits
for its own update in the triggerer (``wait_for_completion=True, deferrable=True``). It may retry:
a retry resumes the wait instead of patching again.

Which customer is the DAG params' business (defaults: the sandbox's ``Ada@Example.com``); trigger
with ``{"alternate_id": "...", "alternate_id_type": "..."}`` for one of your account's profiles (the
connection ``mypreferences_default`` says which account).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_prefs.operators import ProfilePatchOperator
from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor

with DAG(
    dag_id="profile_preferences_sync",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "alternate_id": Param(
            "Ada@Example.com",
            type="string",
            minLength=1,
            description="The customer's alternate id (an e-mail address for the Email type).",
        ),
        "alternate_id_type": Param(
            "Email", type="string", minLength=1, description="The alternate id type of your MyPreferences account."
        ),
        "customer_type": Param(
            "Commercial", type="string", minLength=1, description="The CustomerType the last task sets."
        ),
    },
    tags=["prefs", "example", "mypreferences"],
    doc_md=__doc__,
):

    @task
    def compute_preferences(run_id: str | None = None) -> dict[str, Any]:
        """The state MyPreferences should hold for this customer, stamped with the run that synced it."""
        return {
            "DefaultLocale": "en-GB",
            "CustomFields": [
                {"Name": "FavoriteChannel", "Value": "Email"},
                {"Name": "LastSyncRun", "Value": run_id},
            ],
        }

    update = ProfilePatchOperator(
        task_id="update_preferences",
        alternate_id="{{ params.alternate_id }}",
        alternate_id_type="{{ params.alternate_id_type }}",
        desired=compute_preferences(),
    )
    wait = ProfileUpdateStatusSensor(
        task_id="wait_until_processed",
        alternate_id="{{ params.alternate_id }}",
        alternate_id_type="{{ params.alternate_id_type }}",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )
    set_customer_type = ProfilePatchOperator(
        task_id="set_customer_type",
        alternate_id="{{ params.alternate_id }}",
        alternate_id_type="{{ params.alternate_id_type }}",
        desired={"CustomerType": "{{ params.customer_type }}"},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        wait_timeout=300,
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    update >> wait >> set_customer_type
