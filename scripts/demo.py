"""`make demo`: start the sandbox, run every example DAG with `airflow dags test`, show what changed.

Leaves nothing running: the sandbox is stopped however the demo ends.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DAGS = ["scheduled_offer_refresh", "profile_preferences_sync", "bulk_profile_patch"]
LOGICAL_DATE = "2026-11-25"
OFFER = ("dev", "fallbackOffer1234")
PROFILE = ("DEMO", "Ada@Example.com", "Email")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def start_sandbox(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = log_dir / "sandbox.port"
    port_file.unlink(missing_ok=True)
    log = (log_dir / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_prefs.sandbox",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--pending-delay",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"sandbox did not start; see {log_dir / 'sandbox.log'}")
        time.sleep(0.1)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    get_json(f"{url}/_sandbox/health")
    return process, url


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


def snapshot(url: str) -> dict[str, Any]:
    sandbox, offer_id = OFFER
    client, alternate_id, alternate_id_type = PROFILE
    from urllib.parse import quote, urlencode

    offer = get_json(f"{url}/_sandbox/offers/{sandbox}/{quote(offer_id, safe='')}")
    query = urlencode({"alternateId": alternate_id, "alternateIdType": alternate_id_type})
    profile = get_json(f"{url}/_sandbox/profiles/{client}?{query}")
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
    process, url = start_sandbox(log_dir)
    try:
        print(f"sandbox running at {url}")
        env = airflow_env(url)
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = snapshot(url)
        print("running the example DAGs with `airflow dags test`:")
        results = {dag_id: run_dag(dag_id, env, log_dir) for dag_id in DAGS}
        after = snapshot(url)
        show_diff(f"offer {OFFER[1]} (sandbox {OFFER[0]})", before["offer"], after["offer"])
        show_diff(f"profile {PROFILE[2]}:{PROFILE[1]} (client {PROFILE[0]})", before["profile"], after["profile"])
        entries = get_json(f"{url}/_sandbox/journal")["entries"]
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry["route"]] = counts.get(entry["route"], 0) + 1
        print("\nrequests the sandbox received:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        failed = [dag_id for dag_id, ok in results.items() if not ok]
        print(
            f"\n{len(DAGS) - len(failed)}/{len(DAGS)} example DAG runs succeeded in {time.monotonic() - started:.1f}s"
        )
        return 1 if failed else 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())
