"""One patch, then a deferred wait for ``UpdateStatus == Complete`` that outlives its triggerer.

No retries: a triggerer restart must not cost the task a try, and the patch must not be sent again.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_prefs.operators import ProfilePatchOperator

with DAG(
    dag_id="celery_triggerer_restart",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"alternate_id": "", "customer_type": "Commercial"},
    tags=["prefs", "e2e"],
):
    ProfilePatchOperator(
        task_id="patch_and_wait",
        alternate_id="{{ params.alternate_id }}",
        alternate_id_type="Email",
        patch=[{"op": "replace", "path": "/CustomerType", "value": "{{ params.customer_type }}"}],
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
        retries=0,
    )
