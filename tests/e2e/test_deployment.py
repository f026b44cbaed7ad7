"""Every example DAG, triggered through the REST API of a real deployment, with and without a logical date.

Unlike ``airflow dags test`` (triggers in-process, always a logical date), this is how a user runs
them: the scheduler queues tasks on the LocalExecutor, deferred waits go to the triggerer process.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefs.sandbox import SandboxServer
from airflow_provider_prefs.sandbox.connections import (
    ADOBE_CLIENT_SECRET,
    MP_OAUTH_CLIENT_SECRET,
    MP_STATIC_TOKEN,
)
from e2e.deployment import Deployment
from e2e.runs import (
    LOGICAL_DATE,
    Run,
    asset_triggered_runs,
    failure_report,
    trigger,
    trigger_log_files,
    waits_in_triggerer,
    watch,
)

#: All runs of all example DAGs must be done by then (they run in parallel, one run per DAG at a time).
RUNS_TIMEOUT = 150.0
#: The asset-scheduled example must have run (and finished) this long after the runs above at the latest.
ASSET_RUN_TIMEOUT = 90.0
#: The dated run of profile_preferences_sync changes another profile than the undated one. Asking twice
#: for the same state, the later run would send nothing and find the profile already Complete, so its
#: sensor would rightly not defer (the check below then depended on bulk_profile_patch happening to
#: patch that profile just before).
DATED_RUN_CONF: dict[str, dict[str, Any]] = {"profile_preferences_sync": {"alternate_id": "grace@example.com"}}
#: The offer the refresh example changes, as an asset (what the operators emit).
OFFER_ASSET_URI = "adobe-offer://DEMO123%40AdobeOrg/dev/fallbackOffer1234"


@pytest.fixture(scope="module")
def example_runs(deployment: Deployment, example_dags: dict[str, Any]) -> list[Run]:
    """Trigger each example twice (no logical date, then a fixed one) and watch all runs to the end."""
    started = time.monotonic()
    deployment.wait_for_dags(list(example_dags))
    runs = [
        trigger(deployment, dag_id, date, DATED_RUN_CONF.get(dag_id) if date else None)
        for dag_id in example_dags
        for date in (None, LOGICAL_DATE)
    ]
    runs = watch(deployment, runs, RUNS_TIMEOUT)
    print(f"\nexample runs done in {time.monotonic() - started:.1f} s:\n" + "\n".join(run.label for run in runs))
    return runs


def test_every_example_run_succeeds(
    deployment: Deployment, example_runs: list[Run], example_dags: dict[str, Any]
) -> None:
    triggered = {(run.dag_id, run.how) for run in example_runs}
    assert triggered >= {(d, how) for d in example_dags for how in ("no logical date", "logical date")}
    assert all(run.state == "success" for run in example_runs), failure_report(deployment, example_runs)


def test_deferrable_waits_ran_in_the_triggerer(
    example_runs: list[Run], example_dags: dict[str, Any], deployment: Deployment
) -> None:
    expected = {dag_id: waits_in_triggerer(dag) for dag_id, dag in example_dags.items()}
    assert any(expected.values()), "no example DAG has a deferrable wait"
    triggerer_jobs = deployment.api("GET", "jobs?job_type=TriggererJob")["jobs"]
    assert [job["id"] for job in triggerer_jobs], "no triggerer job registered"
    triggerer_ids = {str(job["id"]) for job in triggerer_jobs}
    checked = 0
    for run in example_runs:
        for task_id in expected[run.dag_id]:
            states = set().union(*(s for (t, _), s in run.seen.items() if t == task_id))
            assert "deferred" in states, f"{run.label}: {task_id} never seen deferred (saw {states})"
            files = trigger_log_files(deployment.home / "logs", run, task_id)
            # The file name carries the id of the triggerer job that ran the trigger: not the worker.
            assert files and {f.name.rsplit(".", 2)[-2] for f in files} <= triggerer_ids, (run.label, files)
            events = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
            fired = [e for e in events if e.get("event") == "Trigger fired event"]
            assert fired and "'status': 'success'" in fired[-1]["result"], (run.label, task_id, events[-3:])
            checked += 1
    assert checked >= 2  # at least the sensor of both triggered runs


def test_no_secret_in_any_log(example_runs: list[Run], deployment: Deployment, e2e_sandbox: SandboxServer) -> None:
    tokens = e2e_sandbox.state.issued_tokens()
    assert tokens, "the sandbox issued no token: the Adobe runs did not authenticate?"
    secrets = {
        ADOBE_CLIENT_SECRET,
        MP_OAUTH_CLIENT_SECRET,
        MP_STATIC_TOKEN,
        *tokens,
        deployment.password,
        deployment.env["AIRFLOW__API_AUTH__JWT_SECRET"],
        deployment.env["AIRFLOW__CORE__FERNET_KEY"],
    }
    logs = [p for p in deployment.home.rglob("*") if p.is_file() and _is_log(p)]
    assert any(".trigger." in p.name for p in logs) and any(p.parent == deployment.process_logs for p in logs)
    leaks = [(str(p), s[:4] + "...") for p in logs for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []


def test_the_asset_scheduled_example_runs_after_the_refresh(example_runs: list[Run], deployment: Deployment) -> None:
    """``offer_refreshed_report`` is scheduled on the offer's asset: a refresh that changed it starts a run."""
    started = time.monotonic()
    refresh = {run.run_id for run in example_runs if run.dag_id == "scheduled_offer_refresh" and run.state == "success"}
    assert refresh, "no successful scheduled_offer_refresh run to follow"
    runs = asset_triggered_runs(deployment, "offer_refreshed_report", ASSET_RUN_TIMEOUT)
    assert runs, f"no asset-triggered run of offer_refreshed_report within {ASSET_RUN_TIMEOUT} s"
    assert [run for run in runs if run["state"] != "success"] == []
    followed = []
    for run in runs:
        events = deployment.api("GET", f"dags/offer_refreshed_report/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")[
            "asset_events"
        ]
        assert events, f"{run['dag_run_id']} consumed no asset event"
        for event in events:
            assert event["uri"] == OFFER_ASSET_URI, event
            if event["source_dag_id"] != "scheduled_offer_refresh" or event["source_run_id"] not in refresh:
                continue
            source = deployment.api(
                "GET",
                f"dags/scheduled_offer_refresh/dagRuns/{event['source_run_id']}/taskInstances/{event['source_task_id']}",
            )
            source_run = deployment.api("GET", f"dags/scheduled_offer_refresh/dagRuns/{event['source_run_id']}")
            followed.append((run, source, source_run))
    assert followed, f"no asset-triggered run consumed an event of the refresh runs {refresh}: {runs}"
    lines = []
    for run, source, source_run in followed:
        created = _when(run["queued_at"])
        assert run["state"] == "success", run
        # Created from the event, so after the task that changed the offer had finished.
        assert created >= _when(source["end_date"]), (run, source)
        lines.append(
            f"{run['dag_run_id']}: {run['state']}, queued {run['queued_at']}; after {source['task_id']} of "
            f"{source_run['dag_run_id']} ended {source['end_date']} (that run ended {source_run['end_date']})"
        )
    print(f"\nasset-triggered runs ({time.monotonic() - started:.1f} s after the example runs):\n" + "\n".join(lines))


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _is_log(path: Path) -> bool:
    return path.suffix == ".log" or os.sep + "logs" + os.sep in str(path)


def test_deferrable_waits_are_found_by_class_and_arguments() -> None:
    """The detection above also finds the operator's own wait (plain and mapped), and only deferrable ones."""
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_provider_prefs.operators import ProfilePatchOperator
    from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor

    common: dict[str, Any] = {"alternate_id_type": "Email", "patch": []}
    with DAG("detect", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        ProfilePatchOperator(task_id="waits", alternate_id="a", wait_for_completion=True, deferrable=True, **common)
        ProfilePatchOperator(task_id="polls", alternate_id="a", wait_for_completion=True, deferrable=False, **common)
        ProfilePatchOperator(task_id="no_wait", alternate_id="a", deferrable=True, **common)
        ProfilePatchOperator.partial(task_id="mapped", wait_for_completion=True, deferrable=True, **common).expand(
            alternate_id=["a", "b"]
        )
        ProfileUpdateStatusSensor(task_id="sensor", alternate_id="a", alternate_id_type="Email", deferrable=True)
        ProfileUpdateStatusSensor(task_id="poke", alternate_id="a", alternate_id_type="Email", deferrable=False)
    assert waits_in_triggerer(dag) == {"waits", "mapped", "sensor"}
