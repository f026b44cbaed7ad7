"""Mapped (bulk) patching: one task instance per profile, created at run time from a list.

``list_changes`` stands in for a query returning the customers whose consent changed. Each mapped
``ProfilePatchOperator`` patches one profile; Airflow runs them in parallel up to
``max_active_tis_per_dag``. For tens of thousands of profiles in one task, see
``BulkProfilePatchOperator``.

The profiles and the value are DAG params (defaults: three sandbox profiles); trigger with
``{"alternate_ids": [...], "alternate_id_type": "...", "customer_type": "..."}`` for your account's
(the connection ``mypreferences_default`` says which account).

The patch tasks name the account's profiles as an inlet (they read each profile to plan the change): an
asset some DAG declares exists from the moment the file is parsed. Airflow 3.3 creates an undeclared
asset on its first event without guarding against concurrency, and when several tasks emit that first
event at the same moment its api-server marks all but one of them failed (an ``IntegrityError`` while
recording their success, no retry). Set ``CLIENT_ID`` to your account's client id.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_prefs.assets import profiles_asset_uri
from airflow_provider_prefs.operators import ProfilePatchOperator

#: The MyPreferences client id of the connection (the account whose profiles the tasks change).
CLIENT_ID = "DEMO"
#: The asset the patch tasks emit events for (``profiles_asset_uri`` builds the same URI from the connection).
PROFILES = Asset(uri=profiles_asset_uri(CLIENT_ID, "Email"))

with DAG(
    dag_id="bulk_profile_patch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "alternate_ids": Param(
            ["Ada@Example.com", "grace@example.com", "ALAN@EXAMPLE.COM"],
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="The customers' alternate ids: one mapped task each.",
        ),
        "alternate_id_type": Param(
            "Email", type="string", minLength=1, description="The alternate id type of your MyPreferences account."
        ),
        "customer_type": Param(
            "Marketing", type="string", minLength=1, description="The CustomerType every profile is set to."
        ),
    },
    tags=["prefs", "example", "mypreferences"],
    doc_md=__doc__,
):

    @task
    def list_changes(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One entry per profile: its alternate id and the patch to apply."""
        assert params is not None  # injected by Airflow: the DAG params of this run
        # Mapped arguments are not templated: the value is put in the patch here.
        return [
            {
                "alternate_id": alternate_id,
                "patch": [{"op": "replace", "path": "/CustomerType", "value": params["customer_type"]}],
            }
            for alternate_id in params["alternate_ids"]
        ]

    ProfilePatchOperator.partial(
        task_id="patch_profile",
        alternate_id_type="{{ params.alternate_id_type }}",
        max_active_tis_per_dag=4,
        inlets=[PROFILES],  # declared, so it exists before the first events (see the module docstring)
        # Safe to retry: a retry finds the patch recorded and does not send it again.
        retries=1,
        retry_delay=timedelta(seconds=5),
    ).expand_kwargs(list_changes())
