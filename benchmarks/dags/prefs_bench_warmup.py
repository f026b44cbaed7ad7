"""Not a contender: one trivial task, run once before the three contenders.

The first task a fresh deployment runs pays one-time costs no later task pays (the api-server's
first ``/execution/task-instances/{id}/run`` answered in 3.2 s instead of ~20 ms), and whichever
contender runs first would carry them. A deployment in use has paid them long ago.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task
from bench_profiles import WARMUP_DAG_ID

with DAG(dag_id=WARMUP_DAG_ID, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["benchmark"]):

    @task
    def warm_up() -> str:
        """Do nothing but run (and push an XCom), like every contender's tasks."""
        return "warm"

    warm_up()
