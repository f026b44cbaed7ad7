"""Benchmark DAG (c): one mapped ``HttpOperator`` (http provider) task instance per profile update.

The baseline a user would write without this provider: PATCH with the JSON body and the
alternateId/alternateIdType query, the bearer token coming from the connection's extra (headers).
"""

from __future__ import annotations

import json
from datetime import datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG
from bench_profiles import DAG_IDS, HTTP_CONN_ID, PATCH, alternate_ids, maybe_profiled, profile_endpoint

with DAG(dag_id=DAG_IDS["http"], schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["benchmark"]):
    maybe_profiled(HttpOperator).partial(
        task_id="patch_profile",
        http_conn_id=HTTP_CONN_ID,
        method="PATCH",
        data=json.dumps(PATCH),
        headers={"Content-Type": "application/json"},
    ).expand(endpoint=[profile_endpoint(alternate_id) for alternate_id in alternate_ids()])
