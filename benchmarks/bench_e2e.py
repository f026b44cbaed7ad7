"""The user-level comparison: N profile updates in a real Airflow deployment, three ways.

``make bench-e2e`` (= ``python benchmarks/bench_e2e.py``) starts the sandbox in this process and the
e2e suite's deployment (``tests/e2e/deployment.py``: api-server, scheduler with the LocalExecutor,
dag-processor, triggerer, SQLite), with the DAGs of ``benchmarks/dags/`` only, then runs, one
after the other, through the REST API:

* (a) one ``BulkProfilePatchOperator`` task (``mypreferences_oauth`` connection);
* (b) N mapped ``ProfilePatchOperator`` task instances (``mypreferences_oauth`` connection);
* (c) N mapped ``HttpOperator`` task instances of the http provider (an ``http`` connection whose
  extra carries the static MyPreferences bearer token as a header).

Before each run the profiles are seeded anew (every update really changes them) and the sandbox's
journal is emptied; afterwards the journal gives the requests per update (token requests included)
and proves every profile was patched exactly once. Wall time is the DAG run's own ``queued_at`` to
``end_date`` (what a user waits for after pressing Trigger), independent of how often we poll.
The table goes to stdout and, under its own heading, into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DAGS = Path(__file__).resolve().parent / "dags"
# The deployment harness is the e2e suite's (a package under tests/), and the DAGs' shared module
# lives next to them: both are imported, not copied.
sys.path[:0] = [str(ROOT / "tests"), str(BENCH_DAGS)]

#: The target of issue 15: bulk's time per update at least this many times lower than HttpOperator's.
TARGET_RATIO = 100.0
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## User-level comparison in a real deployment (`make bench-e2e`)"
START_MARK = "<!-- bench-e2e:start (written by benchmarks/bench_e2e.py) -->"
END_MARK = "<!-- bench-e2e:end -->"
#: What the section says under its table, whatever the numbers.
NOTES = """\
- **Same work for everyone.** The three DAGs (`benchmarks/dags/`) make the same update (one `replace`
  of `/CustomerType`) on the same sandbox profiles, seeded anew before each run; a run counts only if
  the sandbox's journal shows every profile patched exactly once.
- **Auth.** (a) and (b) use the `mypreferences_oauth` connection (client credentials); the worker's
  shared token cache is emptied before each run, so each run pays its token request. (c) uses an
  `http` connection with the static MyPreferences bearer token in its extra (headers): HttpOperator
  has no client-credentials flow, so the baseline gets the cheaper auth.
- **Where the time goes.** Every task instance pays scheduling, a new task process, parsing its DAG
  file, fetching its connection and pushing its XCom through the execution API; a bulk task pays
  them once. Every DAG run also pays a fixed cost (queueing, scheduler loops, task start-up) that no
  contender avoids, which bounds how far below HttpOperator's time per update the bulk task can go
  at this size."""


@dataclass
class Contender:
    """One way of making the updates, and what its run measured."""

    key: str
    label: str
    tasks: str
    auth: str
    state: str = "not run"
    wall: float = 0.0
    task_time: float = 0.0
    #: Median seconds in ``execute()`` per task instance, from the task logs (None when not found).
    execute_median: float | None = None
    requests: int = 0
    token_requests: int = 0
    patched: int = 0
    problem: str = ""

    def per_update(self, updates: int) -> float:
        """Wall time per update, seconds."""
        return self.wall / updates


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200, help="profile updates per contender (default 200)")
    parser.add_argument("--run-timeout", type=float, default=420.0, help="seconds one DAG run may take")
    parser.add_argument("--no-write", action="store_true", help="print the table only, leave RESULTS.md alone")
    return parser.parse_args()


def http_connection(url: str, token: str) -> dict[str, str]:
    """The ``http`` connection of the HttpOperator baseline: the bearer token as a header in the extra."""
    from bench_profiles import HTTP_CONN_ID

    extra = {"Authorization": f"Bearer {token}", "timeout": 20}
    return {f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps({"conn_type": "http", "host": url, "extra": extra})}


def run_contender(
    contender: Contender, deployment: Any, sandbox: Any, updates: int, timeout: float, token_cache: Path
) -> None:
    """Seed the profiles, trigger the contender's DAG, wait for it, read time and requests."""
    from bench_profiles import CLIENT_ID, DAG_IDS, seed_entries
    from e2e.runs import trigger, watch

    sandbox.state.add_profiles(CLIENT_ID, seed_entries(updates))
    sandbox.state.clear_journal()
    # Every contender starts cold: no token left in the worker's shared cache by the one before.
    for entry in token_cache.glob("*"):
        if entry.is_file():
            entry.unlink()
    run = trigger(deployment, DAG_IDS[contender.key], None)
    # Wall time comes from Airflow's own timestamps, so a slow poll costs nothing but load.
    [run] = watch(deployment, [run], timeout, interval=2.0)
    contender.state = run.state or "unknown"
    answer = deployment.api("GET", f"dags/{run.dag_id}/dagRuns/{run.run_id}")
    if answer.get("end_date"):
        contender.wall = (_instant(answer["end_date"]) - _instant(answer["queued_at"])).total_seconds()
    contender.task_time = sum(ti["duration"] or 0.0 for ti in task_instances(deployment, run.dag_id, run.run_id))
    contender.execute_median = median_execute(
        deployment.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    )
    entries = sandbox.state.journal()
    contender.requests = len(entries)
    contender.token_requests = sum(1 for e in entries if "token" in e["path"])
    patches = [e for e in entries if e["method"] == "PATCH" and e["status"] == 200]
    patched = {e["query"].get("alternateId", "").lower() for e in patches}
    contender.patched = len(patched)
    if run.state != "success":
        failed = sorted(f"{task}[{index}]: {states}" for (task, index), states in run.seen.items())
        contender.problem = f"run {run.state}; task states {failed[:5]}"
    elif len(patches) != updates or len(patched) != updates:
        contender.problem = f"{len(patches)} PATCH answered 200 for {len(patched)} distinct profiles"


def task_instances(deployment: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of a run (the REST API pages by at most 100 by default)."""
    found: list[dict[str, Any]] = []
    while True:
        page = deployment.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}")
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def median_execute(run_logs: Path) -> float | None:
    """Median time from the end of "Pre Execute" to the start of "Post Execute" over a run's task logs.

    Tells the operator's own work (``execute()``) apart from the task process start-up around it.
    """
    spans = []
    for log in run_logs.glob("**/attempt=1.log"):
        marks: dict[str, datetime] = {}
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                entry = json.loads(line)
                event = entry["event"]
                if event == "::endgroup::" and "pre" not in marks:
                    marks["pre"] = _instant(entry["timestamp"])
                elif event.startswith("::group::Post Execute"):
                    marks["post"] = _instant(entry["timestamp"])
        if len(marks) == 2:
            spans.append((marks["post"] - marks["pre"]).total_seconds())
    return statistics.median(spans) if spans else None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def table(contenders: list[Contender], updates: int, parallelism: str) -> tuple[str, bool]:
    """The aligned table (rows, then the target line) and whether the target is met."""
    http = next(c for c in contenders if c.key == "http")
    header = (
        "contender",
        "tasks",
        "auth",
        "run",
        "wall time",
        "time/update",
        "in tasks",
        "execute()",
        "requests/update",
        "vs (c)",
    )
    rows = [header]
    for c in contenders:
        ok = c.state == "success" and not c.problem
        ratio = http.per_update(updates) / c.per_update(updates) if ok and c.wall and http.wall else None
        rows.append(
            (
                c.label,
                c.tasks,
                c.auth,
                c.state if ok else f"{c.state}: {c.problem}",
                f"{c.wall:.1f} s",
                f"{c.per_update(updates) * 1000:.1f} ms",
                f"{c.task_time:.1f} s",
                "-" if c.execute_median is None else f"{c.execute_median * 1000:.0f} ms",
                f"{c.requests / updates:.3f} ({c.token_requests} token)",
                "-" if ratio is None else "1.0x (baseline)" if c is http else f"{ratio:.{1 if ratio >= 1 else 2}f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    bulk = next(c for c in contenders if c.key == "bulk")
    measured = all(c.state == "success" and not c.problem for c in (bulk, http)) and bulk.wall > 0
    ratio = http.per_update(updates) / bulk.per_update(updates) if measured else 0.0
    met = measured and ratio >= TARGET_RATIO
    lines += [
        "",
        f"{updates} updates per contender; LocalExecutor, core.parallelism {parallelism}, SQLite, one run at a time,",
        "bytecode cached (PYTHONPYCACHEPREFIX) as on a pip-installed worker.",
        "wall time: the DAG run's queued_at to end_date; in tasks: the sum of its task instances' durations;",
        "execute(): median per task instance of the operator's own work (task log, Pre to Post Execute);",
        "requests/update: every request the sandbox received during the run / updates (token requests included).",
        "vs (c): HttpOperator's time per update divided by this contender's (above 1: faster than HttpOperator).",
        f"target: bulk's time per update >= {TARGET_RATIO:g}x lower than mapped HttpOperator's: "
        f"{ratio:.1f}x -> {'PASS' if met else 'FAIL'}",
    ]
    return "\n".join(lines), met


def machine() -> str:
    """What the numbers were measured on."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}; "
        f"load average before the run {load}"
    )


def write_results(text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the rest as it is."""
    section = f"{START_MARK}\n{text}\n{END_MARK}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START_MARK in current and END_MARK in current:
        head, rest = current.split(START_MARK, 1)
        current = head + section + rest.split(END_MARK, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(current)


def main() -> int:
    """Run the three contenders in one deployment and report."""
    args = parse_args()
    # Every component inherits it, so the DAGs build as many updates as the sandbox holds profiles.
    os.environ["PREFS_BENCH_UPDATES"] = str(args.updates)
    from bench_profiles import DAG_IDS
    from e2e.deployment import TRANSPORT, Deployment, copy_dags
    from e2e.paths import BUILD

    # Each task process imports Airflow, its providers and ours. A pip-installed worker has them
    # byte-compiled; this venv has no .pyc (uv does not compile) and PYTHONDONTWRITEBYTECODE may be
    # inherited, which would make every task compile thousands of modules from source again. A
    # private bytecode cache gives the deployment what a real worker has, for every contender alike.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(BUILD / "bench-e2e" / "pycache")

    from airflow_provider_prefs.sandbox import SandboxServer
    from airflow_provider_prefs.sandbox.connections import MP_STATIC_TOKEN, airflow_conn_env

    contenders = [
        Contender("bulk", "(a) BulkProfilePatchOperator", "1", "OAuth"),
        Contender("mapped", "(b) mapped ProfilePatchOperator", str(args.updates), "OAuth"),
        Contender("http", "(c) mapped HttpOperator (http provider)", str(args.updates), "static bearer"),
    ]
    started, began = time.monotonic(), datetime.now(timezone.utc)
    where = machine()
    with SandboxServer() as sandbox:
        token_cache = BUILD / "bench-e2e" / "token-cache"
        connections = {
            **airflow_conn_env(sandbox.url, **TRANSPORT),
            **http_connection(sandbox.url, MP_STATIC_TOKEN),
            # Named here (not left to the default under AIRFLOW_HOME) so that it can be emptied between runs.
            "AIRFLOW__PREFS__TOKEN_CACHE_DIR": str(token_cache),
        }
        dags = copy_dags(BUILD / "bench-e2e" / "dags", sorted(BENCH_DAGS.glob("*.py")))
        deployment = Deployment(BUILD / "bench-e2e" / "airflow", dags, connections)
        try:
            deployment.start()
            deployment.wait_for_dags(list(DAG_IDS.values()))
            print(f"deployment up after {time.monotonic() - started:.0f} s", flush=True)
            for contender in contenders:
                run_contender(contender, deployment, sandbox, args.updates, args.run_timeout, token_cache)
                print(f"{contender.label}: {contender.state} in {contender.wall:.1f} s {contender.problem}", flush=True)
        finally:
            deployment.stop()
    text, _ = table(contenders, args.updates, deployment.env["AIRFLOW__CORE__PARALLELISM"])
    total = time.monotonic() - started
    print("\n" + text)
    if not args.no_write:
        write_results(
            f"{HEADING}\n\n"
            f"- Date: {began:%Y-%m-%d %H:%M} UTC\n- Machine: {where}\n"
            f"- Command: `make bench-e2e` (= `python benchmarks/bench_e2e.py --updates {args.updates}`; "
            f"wall time {total / 60:.1f} min, deployment start included)\n\n```\n{text}\n```\n\n{NOTES}"
        )
    # A missed target is a result (in the table); a run that failed or lost updates is not a measurement.
    return 0 if all(c.state == "success" and not c.problem for c in contenders) else 1


if __name__ == "__main__":
    sys.exit(main())
