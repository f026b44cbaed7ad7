"""A profile changed from a TaskFlow task, through the hook: the same guarantees as ``ProfilePatchOperator``.

``MyPreferencesHook.change_profile`` is the one way every operator of this provider changes a profile:
with ``desired`` it reads the profile, sends the minimal patch guarded by ``test`` operations (or nothing
when it already matches), plans again if someone else changed the profile meanwhile, and judges a lost
answer by a re-read. Given the task's state store as ``checkpoint``, a retry of this task never sends
the change twice; ``forget_on_success()`` as the last step lets a later clear change it anew.

Runs unchanged against the sandbox; for a real account, trigger it with other params (``alternate_id``,
``alternate_id_type``, ``locale``) and a ``mypreferences_default`` connection of your own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

with DAG(
    dag_id="profile_change_taskflow",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["prefs", "example", "mypreferences", "taskflow"],
    doc_md=__doc__,
    params={
        "alternate_id": Param("Ada@Example.com", type="string", description="the profile's alternate id"),
        "alternate_id_type": Param("Email", type="string", description="its type, e.g. Email"),
        "locale": Param("de-DE", type="string", description="the DefaultLocale the profile should have"),
    },
):

    @task(retries=2, retry_delay=timedelta(seconds=5))
    def set_locale(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make the profile's DefaultLocale what the params say; returns the change's outcome (plain JSON)."""
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
        from airflow_provider_prefs.patching.checkpoint import TaskCheckpoint

        assert params is not None  # Airflow passes the run's params by this argument's name
        checkpoint = TaskCheckpoint.from_context(get_current_context())
        outcome = MyPreferencesHook().change_profile(
            params["alternate_id"],
            params["alternate_id_type"],
            desired={"DefaultLocale": params["locale"]},
            checkpoint=checkpoint,
        )
        checkpoint.forget_on_success()
        return outcome.to_xcom()

    @task
    def show(outcome: Any) -> str:
        """What the change came to: ``applied`` with its operations, or ``unchanged``."""
        line = f"{outcome['target']}: {outcome['status']}, {outcome.get('operations', 0)} operation(s)"
        print(line)
        return line

    show(set_locale())
