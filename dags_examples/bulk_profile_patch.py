"""Mapped (bulk) patching: one task instance per profile, created at run time from a list.

``list_changes`` stands in for a query returning the customers whose consent changed. Each mapped
``ProfilePatchOperator`` patches one profile; Airflow runs them in parallel up to
``max_active_tis_per_dag``. For tens of thousands of profiles in one task, see
``BulkProfilePatchOperator``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_prefs.operators import ProfilePatchOperator

with DAG(
    dag_id="bulk_profile_patch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["prefs", "example", "mypreferences"],
    doc_md=__doc__,
):

    @task
    def list_changes() -> list[dict[str, Any]]:
        """One entry per profile: its alternate id and the patch to apply."""
        customers = ["Ada@Example.com", "grace@example.com", "ALAN@EXAMPLE.COM"]
        return [
            {
                "alternate_id": email,
                "patch": [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}],
            }
            for email in customers
        ]

    ProfilePatchOperator.partial(
        task_id="patch_profile",
        alternate_id_type="Email",
        max_active_tis_per_dag=4,
        # Safe to retry: a retry finds the patch recorded and does not send it again. Also covers
        # Airflow 3.3 failing one of several tasks that emit the first event of a new asset at once.
        retries=1,
        retry_delay=timedelta(seconds=5),
    ).expand_kwargs(list_changes())
