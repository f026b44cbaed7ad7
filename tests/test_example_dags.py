"""The example DAGs run end to end in real Airflow (`airflow dags test`) against the sandbox.

Also the secrets check: with known credentials, nothing secret may appear in the task logs, the
command output, XCom or rendered template fields (all of which live in AIRFLOW_HOME).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_TRANSPORT

from airflow_provider_prefs.sandbox.connections import (
    ADOBE_CLIENT_SECRET,
    MP_OAUTH_CLIENT_SECRET,
    MP_STATIC_TOKEN,
    airflow_conn_env,
)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
EXAMPLES = ["scheduled_offer_refresh", "profile_preferences_sync", "bulk_profile_patch", "profile_change_taskflow"]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    return home


def run_dag(
    dag_id: str, home: Path, sandbox: Any, conf: dict[str, Any] | None = None, **conn_overrides: Any
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        **airflow_conn_env(sandbox.url, **{**FAST_TRANSPORT, **conn_overrides}),
    }
    command = [AIRFLOW, "dags", "test", dag_id, "2026-11-25"]
    if conf is not None:
        command += ["--conf", json.dumps(conf)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def finished_state(output: str) -> str:
    lines = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert lines, output[-3000:]
    return lines[-1].split("state=", 1)[1].split(",", 1)[0]


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_example_dag_succeeds(dag_id: str, airflow_home: Path, sandbox: Any) -> None:
    result = run_dag(dag_id, airflow_home, sandbox)
    assert result.returncode == 0 and finished_state(result.stdout + result.stderr) == "success", (
        result.stdout[-4000:] + result.stderr[-4000:]
    )
    routes = [e["route"] for e in sandbox.state.journal()]
    if dag_id == "scheduled_offer_refresh":
        assert routes.count("offer.patch") == 2
        offer = sandbox.state.offer("dev", "fallbackOffer1234")
        assert offer["name"] == "Seasonal fallback 2026-11-25"  # Jinja rendered in `desired`
        assert offer["representations"][0]["components"][0]["deliveryURL"].endswith("/20261125.png")
    elif dag_id == "profile_preferences_sync":
        profile = sandbox.state.profile("DEMO", "Ada@Example.com", "Email")
        assert profile["DefaultLocale"] == "en-GB"  # from the upstream task's XCom
        stamps = [f["Value"] for f in profile["CustomFields"] if f["Name"] == "LastSyncRun"]
        assert len(stamps) == 1 and stamps[0].startswith("manual__")  # the run id, injected into the task
        assert profile["CustomerType"] == "Commercial"  # patched, then waited for in the (in-process) triggerer
        assert profile["UpdateStatus"] == "Complete"
        assert routes.count("profile.patch") == 2
    elif dag_id == "profile_change_taskflow":
        assert sandbox.state.profile("DEMO", "Ada@Example.com", "Email")["DefaultLocale"] == "de-DE"
        [patch] = [e for e in sandbox.state.journal() if e["route"] == "profile.patch"]
        assert [op["op"] for op in patch["body"]] == ["test", "replace"]  # desired: guarded, minimal
        assert "profile Email:'Ada@Example.com': applied, 2 operation(s)" in result.stdout + result.stderr
    else:
        assert routes.count("profile.patch") == 3


def assert_success(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0 and finished_state(result.stdout + result.stderr) == "success", (
        result.stdout[-4000:] + result.stderr[-4000:]
    )


def test_offer_examples_take_another_offer_from_params(airflow_home: Path, sandbox: Any) -> None:
    """Triggered with ``{"offer_id": ...}``, the offer examples touch that offer and no other."""
    seeded = sandbox.state.offer("dev", "fallbackOffer1234")
    mine = sandbox.state.create_offer(
        "dev", {"name": "Mine", "representations": seeded["representations"]}, "demo-client-id"
    )["id"]
    sandbox.state.clear_journal()
    assert_success(run_dag("scheduled_offer_refresh", airflow_home, sandbox, {"offer_id": mine}))
    offer = sandbox.state.offer("dev", mine)
    assert offer["name"] == "Seasonal fallback 2026-11-25"
    assert offer["representations"][0]["components"][0]["deliveryURL"].endswith("/20261125.png")
    assert sandbox.state.offer("dev", "fallbackOffer1234") == seeded
    assert {e["resource"] for e in sandbox.state.journal() if e["route"].startswith("offer.")} == {f"offer:dev/{mine}"}

    sandbox.state.clear_journal()
    assert_success(run_dag("offer_refreshed_report", airflow_home, sandbox, {"offer_id": "fallbackOffer5678"}))
    assert [e["resource"] for e in sandbox.state.journal() if e["route"] == "offer.get"] == [
        "offer:dev/fallbackOffer5678"
    ]


def test_profile_examples_take_other_profiles_from_params(airflow_home: Path, sandbox: Any) -> None:
    """Triggered with other alternate ids (and values), the profile examples touch those profiles only."""
    ada = sandbox.state.profile("DEMO", "Ada@Example.com", "Email")
    conf = {"alternate_ids": ["grace@example.com", "alan@example.com"], "customer_type": "Partner"}
    assert_success(run_dag("bulk_profile_patch", airflow_home, sandbox, conf))
    patched = [e["query"]["alternateId"] for e in sandbox.state.journal() if e["route"] == "profile.patch"]
    assert sorted(patched) == ["alan@example.com", "grace@example.com"]
    for alternate_id in ("grace@example.com", "alan@example.com"):
        assert sandbox.state.profile("DEMO", alternate_id, "Email")["CustomerType"] == "Partner"
    assert sandbox.state.profile("DEMO", "Ada@Example.com", "Email") == ada

    sandbox.state.clear_journal()
    conf = {"alternate_id": "grace@example.com", "customer_type": "Retail"}
    assert_success(run_dag("profile_preferences_sync", airflow_home, sandbox, conf))
    grace = sandbox.state.profile("DEMO", "grace@example.com", "Email")
    assert grace["CustomerType"] == "Retail" and grace["DefaultLocale"] == "en-GB"
    assert {e["query"]["alternateId"] for e in sandbox.state.journal() if e["route"].startswith("profile.")} == {
        "grace@example.com"
    }
    assert sandbox.state.profile("DEMO", "Ada@Example.com", "Email") == ada


@pytest.mark.timeout(900)  # four `airflow dags test` runs; each takes 1-2 min on a loaded machine
def test_no_secret_leaks_into_logs_xcom_or_rendered_fields(airflow_home: Path, sandbox: Any) -> None:
    outputs = [run_dag(dag_id, airflow_home, sandbox) for dag_id in EXAMPLES]
    outputs.append(run_dag("profile_preferences_sync", airflow_home, sandbox))
    secrets = {ADOBE_CLIENT_SECRET, MP_OAUTH_CLIENT_SECRET, MP_STATIC_TOKEN, *sandbox.state.issued_tokens()}
    assert len(secrets) >= 4  # at least one IMS token was issued and is checked too
    haystacks: dict[str, bytes] = {f"output of run {i}": (o.stdout + o.stderr).encode() for i, o in enumerate(outputs)}
    for path in airflow_home.rglob("*"):
        if path.is_file():  # task logs, and the SQLite DB holding XCom and rendered template fields
            haystacks[str(path)] = path.read_bytes()
    assert any(b"rendered_task_instance_fields" in data for data in haystacks.values())
    leaks = [(where, secret) for where, data in haystacks.items() for secret in secrets if secret.encode() in data]
    assert leaks == []
