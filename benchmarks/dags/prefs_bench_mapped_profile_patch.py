"""Benchmark DAG (b): one mapped ``ProfilePatchOperator`` task instance per profile update."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from bench_profiles import ALTERNATE_ID_TYPE, DAG_IDS, MP_CONN_ID, PATCH, alternate_ids, maybe_profiled

from airflow_provider_prefs.operators import ProfilePatchOperator

with DAG(dag_id=DAG_IDS["mapped"], schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["benchmark"]):
    maybe_profiled(ProfilePatchOperator).partial(
        task_id="patch_profile", conn_id=MP_CONN_ID, alternate_id_type=ALTERNATE_ID_TYPE, patch=PATCH
    ).expand(alternate_id=alternate_ids())
