"""A bulk task that may lose its worker midway: the retry (on another worker) must resume, not resend.

The items file comes with the run's conf (``{"items": "/path/items.jsonl"}``): the test writes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_prefs.operators import BulkProfilePatchOperator

with DAG(
    dag_id="celery_bulk_crash",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"items": ""},
    tags=["prefs", "e2e"],
):
    BulkProfilePatchOperator(
        task_id="bulk",
        items="{{ params['items'] }}",
        alternate_id_type="Email",
        max_concurrency=8,
        # One retry, soon: the scheduler fails the lost try once its heartbeat times out.
        retries=1,
        retry_delay=timedelta(seconds=2),
    )
