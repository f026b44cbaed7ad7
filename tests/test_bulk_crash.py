"""A bulk task SIGKILLed midway and run again applies every item exactly once (real Airflow, real store).

``airflow dags test`` runs a ``BulkProfilePatchOperator`` over 2,000 array appends (``add
/CustomFields/-``, one per profile), or over a feed of 2,000 events for 100 customers (appends and
replaces, interleaved, 20 per customer); once the sandbox journal shows about half of them, the
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
from appends import MARK, add_profiles, emails
from conftest import FAST_TRANSPORT

from airflow_provider_prefs.bulk.runner import RECORDED_AHEAD
from airflow_provider_prefs.sandbox.connections import airflow_conn_env

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ITEMS = 2000
KILL_AFTER = 1000
IN_FLIGHT = 8
#: At most this many items are recorded in flight at any moment (see bulk.runner): a resumed try re-judges no more.
RESUME_WINDOW = RECORDED_AHEAD * IN_FLIGHT
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


def email(n: int) -> str:
    return EMAILS[n]


#: The feed-shaped run: this many customers, each with ITEMS // FEED_PROFILES events, interleaved.
FEED_PROFILES = 100


def distinct_items() -> tuple[int, list[dict[str, Any]]]:
    """One unguarded-looking append per profile, 2,000 profiles."""
    append = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": MARK, "Value": "1"}}]
    return ITEMS, [{"alternate_id": email(n), "patch": append} for n in range(ITEMS)]


def feed_items() -> tuple[int, list[dict[str, Any]]]:
    """20 events per customer over 100 customers, interleaved: appends (even steps) and replaces (odd steps),
    the id spelled in upper case every other step."""
    rows = []
    for step in range(ITEMS // FEED_PROFILES):
        for n in range(FEED_PROFILES):
            alternate_id = email(n).upper() if step % 2 else email(n)
            patch: list[dict[str, Any]]
            if step % 2:
                patch = [{"op": "replace", "path": "/CustomerType", "value": f"v{step}"}]
            else:
                patch = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": MARK, "Value": str(step)}}]
            rows.append({"alternate_id": alternate_id, "patch": patch})
    return FEED_PROFILES, rows


@pytest.fixture(params=["distinct", "feed"])
def bulk_dag(request: pytest.FixtureRequest, tmp_path: Path, sandbox: Any) -> dict[str, str]:
    """An AIRFLOW_HOME with the crash DAG, fresh profiles in the sandbox, and the items file."""
    count, rows = distinct_items() if request.param == "distinct" else feed_items()
    add_profiles(sandbox.url, EMAILS[:count])
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(line) + "\n" for line in rows))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "bulk_crash_resume.py").write_text(DAG_FILE.format(dag_id=DAG_ID, items=str(items), IN_FLIGHT=IN_FLIGHT))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PREFS_CRASH_SHAPE": request.param,
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


def entries_per_profile(sandbox: Any, count: int) -> list[list[str]]:
    """The ``Value`` of each crash-test entry of each profile, in array order."""
    return [
        [f["Value"] for f in sandbox.state.profile("DEMO", email(n), "Email")["CustomFields"] if f.get("Name") == MARK]
        for n in range(count)
    ]


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
    feed = bulk_dag["PREFS_CRASH_SHAPE"] == "feed"
    count = FEED_PROFILES if feed else ITEMS
    # In input order, each exactly once: a feed's appends carry their step, the distinct run one entry each.
    wanted = [str(step) for step in range(0, ITEMS // FEED_PROFILES, 2)] if feed else ["1"]
    entries = entries_per_profile(sandbox, count)
    duplicated = sum(1 for values in entries if len(values) > len(set(values)))
    missing = sum(1 for values in entries if not set(wanted) <= set(values))
    out_of_order = sum(1 for values in entries if values != wanted)
    print(f"killed after {killed_at} PATCHes; duplicated {duplicated}, missing {missing}, out of order {out_of_order}")
    assert (duplicated, missing, out_of_order) == (0, 0, 0), second.stdout[-3000:] + second.stderr[-3000:]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    if feed:
        last = f"v{ITEMS // FEED_PROFILES - 1}"
        types = [sandbox.state.profile("DEMO", email(n), "Email")["CustomerType"] for n in range(count)]
        assert types == [last] * count  # no older replace landed after a newer one
    report = bulk_report(bulk_dag)
    print("report of the rerun:", {k: v for k, v in report.items() if k != "failures"})
    assert report["total"] == ITEMS and report["applied"] == ITEMS and report["failed"] == 0, report
    assert report["skipped"] > 0 and report["resumed"] > 0, report
    # Items the first try finished were all PATCHed; the ones it left in flight had their operations
    # recorded before sending, so some may never have left (killed in between): at most one window.
    assert report["skipped"] <= killed_at, report
    assert report["resumed"] <= RESUME_WINDOW, report
