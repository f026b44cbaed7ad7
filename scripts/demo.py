"""`make demo`: start the sandbox, run every example DAG with `airflow dags test`, show what changed.

Leaves nothing running: the sandbox is stopped however the demo ends.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from airflow_provider_prefs.sandbox.process import SandboxProcess

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DAGS = ["scheduled_offer_refresh", "profile_preferences_sync", "bulk_profile_patch", "profile_change_taskflow"]
LOGICAL_DATE = "2026-11-25"
OFFER = ("dev", "fallbackOffer1234")
PROFILE = ("DEMO", "Ada@Example.com", "Email")


def airflow_env(url: str) -> dict[str, str]:
    from airflow_provider_prefs.sandbox.connections import airflow_conn_env

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(BUILD / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **airflow_conn_env(url),
    }
    return env


def snapshot(sandbox: SandboxProcess) -> dict[str, Any]:
    sandbox_name, offer_id = OFFER
    client, alternate_id, alternate_id_type = PROFILE
    offer = sandbox.control("GET", f"offers/{sandbox_name}/{quote(offer_id, safe='')}")
    query = urlencode({"alternateId": alternate_id, "alternateIdType": alternate_id_type})
    profile = sandbox.control("GET", f"profiles/{client}?{query}")
    return {"offer": offer, "profile": profile}


def show_diff(title: str, before: Any, after: Any) -> None:
    old = json.dumps(before, indent=2, sort_keys=True).splitlines()
    new = json.dumps(after, indent=2, sort_keys=True).splitlines()
    print(f"\n=== {title} ===")
    diff = list(difflib.unified_diff(old, new, "before", "after", lineterm="", n=0))
    print("\n".join(diff) if diff else "(unchanged)")


def run_dag(dag_id: str, env: dict[str, str], log_dir: Path) -> bool:
    log_path = log_dir / f"{dag_id}.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        code = subprocess.call(
            [str(Path(sys.executable).with_name("airflow")), "dags", "test", dag_id, LOGICAL_DATE],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finished = [line for line in log_path.read_text(errors="replace").splitlines() if "DagRun Finished" in line]
    ok = code == 0 and bool(finished) and "state=success" in finished[-1]
    print(f"  {dag_id:<28} {'success' if ok else 'FAILED'}  ({time.monotonic() - started:.1f}s, log: {log_path})")
    return ok


def main() -> int:
    log_dir = BUILD / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with SandboxProcess(log_dir, pending_delay=2) as sandbox:
        print(f"sandbox running at {sandbox.url}")
        env = airflow_env(sandbox.url)
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = snapshot(sandbox)
        print("running the example DAGs with `airflow dags test`:")
        results = {dag_id: run_dag(dag_id, env, log_dir) for dag_id in DAGS}
        after = snapshot(sandbox)
        deadline = time.monotonic() + 15  # the bulk DAG does not wait: let its last update settle
        while after["profile"].get("UpdateStatus") == "Pending Update" and time.monotonic() < deadline:
            time.sleep(0.5)
            after = snapshot(sandbox)
        show_diff(f"offer {OFFER[1]} (sandbox {OFFER[0]})", before["offer"], after["offer"])
        show_diff(f"profile {PROFILE[2]}:{PROFILE[1]} (client {PROFILE[0]})", before["profile"], after["profile"])
        entries = sandbox.control("GET", "journal")["entries"]
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry["route"]] = counts.get(entry["route"], 0) + 1
        print("\nrequests the sandbox received:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        failed = [dag_id for dag_id, ok in results.items() if not ok]
        print(
            f"\n{len(DAGS) - len(failed)}/{len(DAGS)} example DAG runs succeeded in {time.monotonic() - started:.1f}s"
        )
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
