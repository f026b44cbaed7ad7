"""DAGs for tests/test_task_retries_airflow.py: patch tasks whose retries must never patch again.

``prefs_wait_retry_worker`` / ``prefs_wait_retry_deferred``: one array append whose wait for
``UpdateStatus == Complete`` times out on the first try (the test makes the sandbox slow to
process), then retries. ``prefs_crash``: one array append that the test SIGKILLs mid-request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_prefs.operators import ProfilePatchOperator

#: Seconds a wait lasts before timing out; the test sets the sandbox's processing delay above it.
WAIT_TIMEOUT = 3.0


def append(value: str) -> list[dict[str, object]]:
    """An unguarded array append: applying it twice would leave two entries."""
    return [{"op": "add", "path": "/CustomFields/-", "value": {"Name": "Campaign", "Value": value}}]


for deferrable, alternate_id in ((False, "Ada@Example.com"), (True, "grace@example.com")):
    with DAG(
        dag_id=f"prefs_wait_retry_{'deferred' if deferrable else 'worker'}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
    ):
        ProfilePatchOperator(
            task_id="append_and_wait",
            alternate_id=alternate_id,
            alternate_id_type="Email",
            patch=append("Retry"),
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.5,
            wait_timeout=WAIT_TIMEOUT,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )

with DAG(dag_id="prefs_crash", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ProfilePatchOperator(
        task_id="append",
        alternate_id="alan@example.com",
        alternate_id_type="Email",
        patch=append("Crash"),
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
