"""The CeleryExecutor configuration: PostgreSQL, Redis, two Celery workers, one triggerer (``-k celery``).

What only a distributed deployment shows: a worker that dies without a word (SIGKILL of its whole
process tree, as when its machine is lost) in the middle of a 2,000-item bulk task is noticed by the
scheduler through the missing task heartbeats, the retry runs on the other worker and resumes from
the checkpoint in the task state store, so every item lands exactly once; and a triggerer killed
during a deferred wait is replaced without a retry and without a second PATCH.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from appends import add_profiles, duplicated_and_missing, emails, entries_per_profile, write_items

from airflow_provider_prefs.bulk.runner import RECORDED_AHEAD
from airflow_provider_prefs.sandbox import SandboxServer
from e2e.conftest import HEARTBEAT_TIMEOUT
from e2e.deployment import Deployment
from e2e.runs import Run, failure_report, trigger, waits_in_triggerer, watch
from e2e.services import PostgresServer, RedisServer

pytestmark = [pytest.mark.celery, pytest.mark.timeout(900)]

BULK_DAG = "celery_bulk_crash"
RESTART_DAG = "celery_triggerer_restart"
ITEMS = 2000
#: The worker is killed once the sandbox has seen this many of the bulk task's PATCHes.
KILL_AFTER = 1000
#: The bulk task's max_concurrency (see the DAG); at most RECORDED_AHEAD times as many items are recorded
#: in flight at the kill (see bulk.runner), so a resumed try re-judges no more.
IN_FLIGHT = 8
RESUME_WINDOW = RECORDED_AHEAD * IN_FLIGHT
CRASH_EMAILS = emails(ITEMS, prefix="celery-crash")
RESTART_EMAIL = "triggerer-restart@example.com"
#: Time bounds, generous for a loaded 2-core machine but finite.
EXAMPLES_TIMEOUT = 240.0
KILL_POINT_TIMEOUT = 240.0
#: From the kill to the end of the retry: heartbeat timeout, detection interval, retry delay, 1,000 items.
RECOVERY_TIMEOUT = HEARTBEAT_TIMEOUT + 210.0
TAKEOVER_TIMEOUT = 120.0


def requests_for(sandbox: SandboxServer, route: str, alternate_ids: set[str]) -> int:
    """How many requests of ``route`` (``profile.patch``, ``profile.get``) the sandbox got for these profiles."""
    return sum(
        1
        for entry in sandbox.state.journal()
        if entry["route"] == route
        and any(k.lower() == "alternateid" and v.lower() in alternate_ids for k, v in entry["query"].items())
    )


def task_instance(deployment: Deployment, run: Run, task_id: str) -> dict[str, Any]:
    """The task instance as the REST API shows it (state, try_number, pid, trigger...)."""
    return dict(deployment.api("GET", f"dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll ``condition`` until true; return when (``time.monotonic()``); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)
    return time.monotonic()


def _seconds(elapsed: float | None) -> str:
    return "(never)" if elapsed is None else f"{elapsed:.1f} s"


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_celery_example_runs_succeed(celery_deployment: Deployment, example_dags: dict[str, Any]) -> None:
    """Every example DAG, triggered once, succeeds on the Celery workers; its deferrable waits defer."""
    started = time.monotonic()
    celery_deployment.wait_for_dags([*example_dags, BULK_DAG, RESTART_DAG])
    runs = watch(celery_deployment, [trigger(celery_deployment, d, None) for d in example_dags], EXAMPLES_TIMEOUT)
    print(f"\nCelery example runs done in {time.monotonic() - started:.1f} s:\n" + "\n".join(r.label for r in runs))
    assert all(r.state == "success" for r in runs), failure_report(celery_deployment, runs)
    for run in runs:
        for task_id in waits_in_triggerer(example_dags[run.dag_id]):
            states = set().union(*(s for (t, _), s in run.seen.items() if t == task_id))
            assert "deferred" in states, f"{run.label}: {task_id} never seen deferred (saw {states})"
    # The tasks went through Celery: the workers logged receiving them (LocalExecutor would log nothing there).
    received = sum(
        (celery_deployment.process_logs / f"{name}.log").read_text(errors="replace").count("] received")
        for name in celery_deployment.components
        if name.startswith("worker-")
    )
    assert received >= len(runs), received


def test_celery_deployment_listens_on_loopback_only(
    celery_deployment: Deployment, celery_servers: tuple[PostgresServer, RedisServer]
) -> None:
    ours = {p.pid for p in celery_deployment.processes.values()} | {s.process.pid for s in celery_servers if s.process}
    for pid in list(ours):
        ours |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "found no listening socket of the deployment (the api-server has one)"
    assert [(c.pid, c.laddr) for c in listening if c.laddr.ip not in ("127.0.0.1", "::1")] == []


def test_celery_worker_killed_mid_bulk_the_retry_on_the_other_worker_applies_every_item_once(
    celery_deployment: Deployment, celery_sandbox: SandboxServer, tmp_path: Path
) -> None:
    deployment, sandbox = celery_deployment, celery_sandbox
    crash_ids = {e.lower() for e in CRASH_EMAILS}
    add_profiles(sandbox.url, CRASH_EMAILS, first_profile_id=70_000)
    items = write_items(tmp_path / "items.jsonl", CRASH_EMAILS)
    started = time.monotonic()
    run = trigger(deployment, BULK_DAG, None, {"items": str(items)})

    wait_until(
        lambda: requests_for(sandbox, "profile.patch", crash_ids) >= KILL_AFTER,
        KILL_POINT_TIMEOUT,
        f"{KILL_AFTER} PATCHes of the bulk task",
    )
    first = task_instance(deployment, run, "bulk")
    assert (first["state"], first["try_number"]) == ("running", 1), first
    victim = deployment.owner_of(first["pid"])
    assert victim is not None and victim.startswith("worker-"), (first["pid"], victim)
    killed_at = deployment.kill(victim)
    patched_at_kill = requests_for(sandbox, "profile.patch", crash_ids)
    # The task runner had its own process group: it must be gone too (at most a zombie nobody reaped).
    assert not _alive(first["pid"]), f"task process {first['pid']} survived the kill of {victim}"
    assert KILL_AFTER <= patched_at_kill < ITEMS, patched_at_kill

    # Follow the task instance: the scheduler must notice the silence, then the retry runs elsewhere.
    seen: list[tuple[float, str, int]] = []
    retry_worker: str | None = None
    deadline = killed_at + RECOVERY_TIMEOUT
    while True:
        ti = task_instance(deployment, run, "bulk")
        seen.append((time.monotonic() - killed_at, str(ti["state"]), int(ti["try_number"])))
        if ti["try_number"] == 2 and ti["state"] == "running" and retry_worker is None:
            retry_worker = deployment.owner_of(ti["pid"])
        if ti["state"] in ("success", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    detected = next((t for t, state, _ in seen if state != "running"), None)
    retry_running = next((t for t, state, n in seen if n == 2 and state == "running"), None)
    finished = time.monotonic() - started
    print(
        f"\nbulk: killed {victim} after {patched_at_kill} PATCHes ({killed_at - started:.1f} s after the trigger); "
        f"failed try seen after {_seconds(detected)}, retry running after {_seconds(retry_running)} on {retry_worker}; "
        f"task {ti['state']} {seen[-1][0]:.1f} s after the kill, {finished:.1f} s in all"
    )
    assert (ti["state"], ti["try_number"]) == ("success", 2), seen[-5:]
    assert retry_worker is not None and retry_worker != victim, (victim, retry_worker)
    tries = deployment.api("GET", f"dags/{BULK_DAG}/dagRuns/{run.run_id}/taskInstances/bulk/tries")["task_instances"]
    states = {t["try_number"]: t["state"] for t in tries}
    print(f"bulk: states of the tries {states}")
    assert states.get(1) not in (None, "success", "running"), tries

    duplicated, missing = duplicated_and_missing(entries_per_profile(sandbox, CRASH_EMAILS))
    print(f"bulk: duplicated {duplicated}, missing {missing}")
    assert (duplicated, missing) == (0, 0)
    report = deployment.api(
        "GET", f"dags/{BULK_DAG}/dagRuns/{run.run_id}/taskInstances/bulk/xcomEntries/bulk_report?deserialize=true"
    )["value"]
    print("bulk: report of the retry:", {k: v for k, v in report.items() if k != "failures"})
    assert report["total"] == ITEMS and report["applied"] == ITEMS and report["failed"] == 0, report
    # The retry resumed: it skipped what the lost try had finished and re-judged at most one window in flight.
    assert 0 < report["skipped"] <= patched_at_kill and report["resumed"] <= RESUME_WINDOW, report


def test_celery_triggerer_killed_during_a_deferred_wait_is_replaced(
    celery_deployment: Deployment, celery_sandbox: SandboxServer
) -> None:
    deployment, sandbox = celery_deployment, celery_sandbox
    profile = {RESTART_EMAIL}
    add_profiles(sandbox.url, [RESTART_EMAIL], first_profile_id=90_000)
    started = time.monotonic()
    run = trigger(deployment, RESTART_DAG, None, {"alternate_id": RESTART_EMAIL})
    try:
        wait_until(lambda: requests_for(sandbox, "profile.patch", profile) >= 1, 120, "the PATCH")
        # Held at `Pending Update` (the PATCH's own pending delay is 8 s) until the new triggerer has taken over.
        sandbox.state.force_update_status("DEMO", RESTART_EMAIL, "Email", "Pending Update")

        def polled_by_a_triggerer() -> bool:
            ti = task_instance(deployment, run, "patch_and_wait")
            return ti["state"] == "deferred" and bool((ti["trigger"] or {}).get("triggerer_id"))

        wait_until(polled_by_a_triggerer, 120, "the wait deferred to the triggerer")
        reads = requests_for(sandbox, "profile.get", profile)
        wait_until(lambda: requests_for(sandbox, "profile.get", profile) >= reads + 2, 60, "the trigger polling")
        old_job = task_instance(deployment, run, "patch_and_wait")["trigger"]["triggerer_id"]

        killed_at = deployment.kill("triggerer")
        reads = requests_for(sandbox, "profile.get", profile)
        time.sleep(4)  # poll_interval is 1 s: a live wait would have read the profile meanwhile
        assert requests_for(sandbox, "profile.get", profile) == reads, "the wait still polls after the kill"
        deployment.restart("triggerer")

        def taken_over() -> bool:
            trigger_row = task_instance(deployment, run, "patch_and_wait")["trigger"] or {}
            return trigger_row.get("triggerer_id") not in (None, old_job) and (
                requests_for(sandbox, "profile.get", profile) > reads
            )

        took_over = wait_until(taken_over, TAKEOVER_TIMEOUT, "a new triggerer running the wait") - killed_at
        assert task_instance(deployment, run, "patch_and_wait")["state"] == "deferred"
    finally:
        sandbox.state.force_update_status("DEMO", RESTART_EMAIL, "Email", None)  # back to the computed status

    (done,) = watch(deployment, [run], 120)
    ti = task_instance(deployment, run, "patch_and_wait")
    patches = requests_for(sandbox, "profile.patch", profile)
    print(
        f"\ntriggerer: killed (job {old_job}), new one polling {took_over:.1f} s later; "
        f"run {done.state} {time.monotonic() - started:.1f} s after the trigger, {patches} PATCH"
    )
    assert (done.state, ti["state"], ti["try_number"]) == ("success", "success", 1), (done.label, ti["state"])
    assert patches == 1
    assert sandbox.state.profile("DEMO", RESTART_EMAIL, "Email")["CustomerType"] == "Commercial"
