"""Benchmark DAG (a): every profile update in one ``BulkProfilePatchOperator`` task."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from bench_profiles import ALTERNATE_ID_TYPE, DAG_IDS, MP_CONN_ID, PATCH, alternate_ids

from airflow_provider_prefs.operators import BulkProfilePatchOperator

with DAG(dag_id=DAG_IDS["bulk"], schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["benchmark"]):
    BulkProfilePatchOperator(
        task_id="patch_profiles",
        conn_id=MP_CONN_ID,
        alternate_id_type=ALTERNATE_ID_TYPE,
        items=[{"alternate_id": alternate_id, "patch": PATCH} for alternate_id in alternate_ids()],
        max_concurrency=8,
    )
