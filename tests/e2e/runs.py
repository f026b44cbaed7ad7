"""Trigger DAG runs through the REST API and watch them, recording every task state seen on the way."""

from __future__ import annotations

import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_prefs.operators.mypreferences import default_deferrable
from e2e.deployment import Deployment

#: The fixed logical date of the "with a logical date" runs (far from today's scheduled run).
LOGICAL_DATE = "2026-11-03T00:00:00Z"
FINISHED = {"success", "failed"}
#: POSTs of a run before giving up (see :func:`trigger`).
TRIGGER_ATTEMPTS = 3


@dataclass
class Run:
    """One DAG run and what the test saw of it."""

    dag_id: str
    run_id: str
    how: str  # "no logical date", "logical date", or "scheduled" (made by the scheduler itself)
    state: str | None = None
    #: (task_id, map_index) -> every state the task instance was seen in.
    seen: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Readable name for reports."""
        return f"{self.dag_id} ({self.how}) {self.run_id}: {self.state}"


def trigger(deployment: Deployment, dag_id: str, logical_date: str | None, conf: dict[str, Any] | None = None) -> Run:
    """POST a run; ``logical_date=None`` is what the UI's Trigger button does by default in Airflow 3."""
    # Our own run id makes a retry safe: a second POST of a run that was created answers 409.
    run_id = f"manual__e2e_{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {"logical_date": logical_date, "dag_run_id": run_id}
    if conf:
        body["conf"] = conf
    for attempt in range(1, TRIGGER_ATTEMPTS + 1):
        try:
            deployment.api("POST", f"dags/{dag_id}/dagRuns", body)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 409 and attempt > 1:
                break
            # SQLite allows one writer: while tasks finish (and emit asset events) a POST can time
            # out on the database lock and answer 500, having created nothing.
            if exc.code != 500 or attempt == TRIGGER_ATTEMPTS:
                raise
            time.sleep(2)
    return Run(dag_id, run_id, "logical date" if logical_date else "no logical date")


def watch(deployment: Deployment, runs: list[Run], timeout: float, interval: float = 0.5) -> list[Run]:
    """Poll (two wildcard requests a round) until every run finished; also adopt scheduler-made runs.

    Task states are sampled every ``interval`` seconds; the default half second is often enough to
    catch a wait in ``deferred`` (it lasts the sandbox's pending delay, several seconds).
    """
    by_key = {(run.dag_id, run.run_id): run for run in runs}
    dag_ids = {run.dag_id for run in runs}
    deadline = time.monotonic() + timeout
    while True:
        for item in deployment.api("GET", "dags/~/dagRuns?limit=1000")["dag_runs"]:
            key = (item["dag_id"], item["dag_run_id"])
            if key not in by_key and item["dag_id"] in dag_ids and item["run_type"] == "scheduled":
                by_key[key] = Run(item["dag_id"], item["dag_run_id"], "scheduled")
            if key in by_key:
                by_key[key].state = item["state"]
        for ti in deployment.api("GET", "dags/~/dagRuns/~/taskInstances?limit=1000")["task_instances"]:
            run = by_key.get((ti["dag_id"], ti["dag_run_id"]))
            if run is not None and ti["state"]:
                run.seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
        if all(run.state in FINISHED for run in by_key.values()):
            return list(by_key.values())
        if time.monotonic() > deadline:
            return list(by_key.values())  # the tests report which runs did not finish
        time.sleep(interval)


def failure_report(deployment: Deployment, runs: list[Run], lines: int = 25) -> str:
    """Each run that did not succeed, with the task states seen and the end of its failed tasks' logs.

    A flaky failure on a shared machine must be diagnosable from the test output alone: the
    deployment's temporary home (and its logs) is gone by the time anyone looks.
    """
    parts = []
    for run in runs:
        if run.state == "success":
            continue
        parts.append(f"{run.label}; task states seen {run.seen}")
        failed = {(task, index) for (task, index), states in run.seen.items() if states & {"failed", "up_for_retry"}}
        for task, index in sorted(failed):
            folder = deployment.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / f"task_id={task}"
            if index >= 0:
                folder = folder / f"map_index={index}"
            for log in sorted(folder.glob("attempt=*.log")):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {log.relative_to(deployment.home)} (last {lines} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def waits_in_triggerer(dag: Any) -> set[str]:
    """Task ids of ``dag`` that must hand their wait to the triggerer, found by class and arguments."""
    from airflow_provider_prefs.operators import ProfilePatchOperator
    from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor

    found = set()
    for task in dag.tasks:
        # A mapped task keeps its class and arguments apart from the (unexpanded) operator.
        kwargs = getattr(task, "partial_kwargs", None)
        cls = getattr(task, "operator_class", type(task)) if kwargs is not None else type(task)
        args = kwargs if kwargs is not None else vars(task)
        deferrable = args.get("deferrable")
        deferrable = default_deferrable() if deferrable is None else deferrable
        if not isinstance(cls, type) or not deferrable:
            continue
        if issubclass(cls, ProfileUpdateStatusSensor) or (
            issubclass(cls, ProfilePatchOperator) and args.get("wait_for_completion")
        ):
            found.add(task.task_id)
    return found


def trigger_log_files(logs: Path, run: Run, task_id: str) -> list[Path]:
    """The per-task-instance log files the triggerer wrote (``attempt=N.log.trigger.<job id>.log``)."""
    folder = logs / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    return sorted(folder.glob(f"task_id={task_id}/**/*.log.trigger.*.log"))


def asset_triggered_runs(deployment: Deployment, dag_id: str, timeout: float) -> list[dict[str, Any]]:
    """The asset-triggered runs of ``dag_id`` once at least one exists and all have finished.

    The scheduler creates them from asset events shortly after the emitting task succeeded, so they
    may appear after every triggered run finished: wait for them here.
    """
    deadline = time.monotonic() + timeout
    while True:
        runs = deployment.api("GET", f"dags/{dag_id}/dagRuns?run_type=asset_triggered&limit=100")["dag_runs"]
        if runs and all(run["state"] in FINISHED for run in runs):
            return list(runs)
        if time.monotonic() > deadline:
            return list(runs)  # the test reports what it found
        time.sleep(1)
