"""Task retries and a killed worker in real Airflow (``airflow dags test`` / ``airflow tasks test``).

Airflow 3.3's task state store keeps the patch operators' intent and outcome per task instance
(dag_id, run_id, task_id, map_index) across tries, so:

* a wait that times out fails the try with a retryable error, and the retry waits again without
  patching again (worker and deferrable waits alike);
* a task SIGKILLed after the service applied its patch but before the answer arrived, when the
  same task instance runs again, re-judges the recorded patch instead of appending a second copy.

The sandbox journal is the witness: it records every PATCH the service received and applied.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_TRANSPORT, ROOT, journal

from airflow_provider_prefs.sandbox import faults
from airflow_provider_prefs.sandbox.connections import airflow_conn_env

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = ROOT / "tests" / "dags"
sys.path.insert(0, str(DAGS))
from prefs_task_retries import WAIT_TIMEOUT, append  # noqa: E402


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow_home_retries")
    subprocess.run([AIRFLOW, "db", "migrate"], env=airflow_env(home), check=True, capture_output=True)
    return home


def airflow_env(home: Path, sandbox: Any = None, **transport: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    if sandbox is not None:
        env |= airflow_conn_env(sandbox.url, **{**FAST_TRANSPORT, **transport})
    return env


def airflow(home: Path, sandbox: Any, *args: str, **transport: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args], env=airflow_env(home, sandbox, **transport), capture_output=True, text=True, timeout=300
    )


def entries_of(sandbox: Any, alternate_id: str) -> list[dict[str, Any]]:
    return [e for e in journal(sandbox, "profile.patch") if e["query"].get("alternateId") == alternate_id]


def copies(sandbox: Any, alternate_id: str, value: str) -> int:
    profile = sandbox.state.profile("DEMO", alternate_id, "Email")
    return profile["CustomFields"].count(append(value)[0]["value"])


@pytest.mark.timeout(600)  # each Airflow CLI call takes 10-20 s on a loaded machine
@pytest.mark.parametrize(
    ("dag_id", "alternate_id"),
    [("prefs_wait_retry_worker", "Ada@Example.com"), ("prefs_wait_retry_deferred", "grace@example.com")],
)
def test_retry_after_a_wait_timeout_sends_no_second_patch(
    airflow_home: Path, sandbox: Any, dag_id: str, alternate_id: str
) -> None:
    # Processing takes twice the wait: the first try must time out, the retry (>= 1 s later) sees Complete.
    sandbox.state.set_config(pending_delay=2 * WAIT_TIMEOUT)
    result = airflow(airflow_home, sandbox, "dags", "test", dag_id)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "DagRun Finished" in output and "state=success" in output.split("DagRun Finished")[-1][:300], output[-4000:]
    assert "UpdateStatusTimeoutError" in output  # the first try really timed out ...
    assert "already got its answer" in output  # ... and the retry resumed from the task state store
    assert [e["applied"] for e in entries_of(sandbox, alternate_id)] == [True]
    assert copies(sandbox, alternate_id, "Retry") == 1


def slow_after_kind() -> str:
    """The sandbox fault that applies a request, then delays its answer."""
    return "slow_after" if "slow_after" in faults.KINDS else "slow"


def run_id_of(home: Path, sandbox: Any, dag_id: str) -> str:
    listed = airflow(home, sandbox, "dags", "list-runs", dag_id, "-o", "json")
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("[{")]  # warnings share stdout
    runs = json.loads(line)
    [run_id] = [run["run_id"] for run in runs if run["run_id"].startswith("manual__")]
    return str(run_id)


@pytest.mark.timeout(600)
def test_task_killed_after_the_patch_landed_does_not_apply_it_again(airflow_home: Path, sandbox: Any) -> None:
    delay = 20.0
    sandbox.state.set_faults([{"route": "profile.patch", "kind": slow_after_kind(), "delay": delay, "count": 1}])
    # A client timeout longer than the delayed answer: the task is still waiting when it is killed.
    env = airflow_env(airflow_home, sandbox, timeout=120)
    first = subprocess.Popen(
        [AIRFLOW, "dags", "test", "prefs_crash"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while copies(sandbox, "alan@example.com", "Crash") == 0:  # the service applied it; the answer is pending
            assert first.poll() is None and time.monotonic() < deadline, "the patch never reached the sandbox"
            time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # `dags test` runs the task in its own process: this kills the worker
        first.wait()
    sandbox.state.set_faults([])

    # The same task instance again: same dag_id, run_id, task_id and map_index, so the same store.
    rerun = airflow(
        airflow_home, sandbox, "tasks", "test", "prefs_crash", "append", run_id_of(airflow_home, sandbox, "prefs_crash")
    )
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-4000:]
    assert "a re-read shows it was applied" in output, output[-4000:]

    # The killed request's journal entry is written when its delayed answer goes out.
    deadline = time.monotonic() + delay + 30
    while not any(e["fault"] for e in entries_of(sandbox, "alan@example.com")) and time.monotonic() < deadline:
        time.sleep(0.2)
    entries = entries_of(sandbox, "alan@example.com")
    assert [e["applied"] for e in entries if e["fault"] is None] == []  # the rerun sent no PATCH at all
    assert copies(sandbox, "alan@example.com", "Crash") == 1
