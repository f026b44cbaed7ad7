"""A bulk task SIGKILLed midway and run again applies every item exactly once (real Airflow, real store).

``airflow dags test`` runs a ``BulkProfilePatchOperator`` over 2,000 unguarded array appends
(``add /CustomFields/-``, one per profile); once the sandbox journal shows about half of them, the
process is killed by PID, then the same task instance runs again: the killed run left its DAG run in
the database, so ``airflow tasks test`` for the same logical date finds that run, and with it the
task state store. (A second ``airflow dags test`` would not do: it deletes and recreates the DAG run,
and the task state store with it.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from appends import add_profiles, duplicated_and_missing, emails, entries_per_profile, write_items
from conftest import FAST_TRANSPORT

from airflow_provider_prefs.sandbox.connections import airflow_conn_env

pytest.importorskip("airflow.sdk.bases.resumablejobmixin", reason="the task state store needs Airflow 3.3+")

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ITEMS = 2000
KILL_AFTER = 1000
IN_FLIGHT = 8
DAG_ID = "bulk_crash_resume"
LOGICAL_DATE = "2026-11-25"

DAG_FILE = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_prefs.operators import BulkProfilePatchOperator

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    BulkProfilePatchOperator(
        task_id="bulk",
        items={items!r},
        alternate_id_type="Email",
        max_concurrency={IN_FLIGHT},
        retries=0,
        retry_delay=timedelta(seconds=1),
    )
"""


EMAILS = emails(ITEMS)


@pytest.fixture
def bulk_dag(tmp_path: Path, sandbox: Any) -> dict[str, str]:
    """An AIRFLOW_HOME with the crash DAG, 2,000 fresh profiles in the sandbox, and the items file."""
    add_profiles(sandbox.url, EMAILS)
    items = write_items(tmp_path / "items.jsonl", EMAILS)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "bulk_crash_resume.py").write_text(DAG_FILE.format(dag_id=DAG_ID, items=str(items), IN_FLIGHT=IN_FLIGHT))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **airflow_conn_env(sandbox.url, **FAST_TRANSPORT),
    }
    migrated_db(env, tmp_path / "home")
    return env


def migrated_db(env: dict[str, str], home: Path) -> None:
    """A migrated metadata database in ``home``: copied from a cached template (migrating takes long)."""
    import airflow

    template = Path(__file__).resolve().parents[1] / "build" / f"airflow-{airflow.__version__}-migrated.db"
    home.mkdir(parents=True, exist_ok=True)
    if not template.exists():
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=240)
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "airflow.db", template)
    else:
        shutil.copyfile(template, home / "airflow.db")


def patches(sandbox: Any) -> int:
    return sum(1 for e in sandbox.state.journal() if e["route"] == "profile.patch")


#: The first run creates the DAG run (``dags test`` also writes the DAG to the database).
FIRST_RUN = [AIRFLOW, "dags", "test", DAG_ID, LOGICAL_DATE]
#: The rerun of the same task instance, in the DAG run the killed one left behind.
RERUN = [AIRFLOW, "tasks", "test", DAG_ID, "bulk", LOGICAL_DATE]


def start_first_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A session of its own, so the kill below reaches the whole run and nothing else.
        return subprocess.Popen(FIRST_RUN, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def bulk_report(env: dict[str, str]) -> dict[str, Any]:
    """The ``bulk_report`` XCom of the rerun, read from the metadata database."""
    code = textwrap.dedent(
        f"""
        import json
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        with create_session() as session:
            row = session.query(XComModel).filter_by(dag_id={DAG_ID!r}, task_id="bulk", key="bulk_report").one()
            value = row.value
        print(json.dumps(value if isinstance(value, dict) else json.loads(value)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_bulk_killed_midway_then_rerun_applies_every_item_exactly_once(
    bulk_dag: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    first = start_first_run(bulk_dag, tmp_path / "first.log")
    deadline = time.monotonic() + 180
    try:
        while patches(sandbox) < KILL_AFTER:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run did not reach the kill point in time"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the process group of the run started above, by its PID
        first.wait()
    killed_at = patches(sandbox)
    assert KILL_AFTER <= killed_at < ITEMS, killed_at

    second = subprocess.run(RERUN, env=bulk_dag, capture_output=True, text=True, timeout=240)
    duplicated, missing = duplicated_and_missing(entries_per_profile(sandbox, EMAILS))
    print(f"killed after {killed_at} PATCHes; duplicated {duplicated}, missing {missing}")
    assert (duplicated, missing) == (0, 0), second.stdout[-3000:] + second.stderr[-3000:]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    report = bulk_report(bulk_dag)
    print("report of the rerun:", {k: v for k, v in report.items() if k != "failures"})
    assert report["total"] == ITEMS and report["applied"] == ITEMS and report["failed"] == 0, report
    assert report["skipped"] > 0 and report["resumed"] > 0, report
    # Items the first try finished were all PATCHed; the ones it left in flight had their operations
    # recorded before sending, so some may never have left (killed in between): at most one window.
    assert report["skipped"] <= killed_at, report
    assert report["resumed"] <= IN_FLIGHT, report
