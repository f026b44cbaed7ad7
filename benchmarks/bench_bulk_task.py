"""One bulk task of 10,000 items with its checkpoints on, in real Airflow, against raw 8-thread clients.

``python benchmarks/bench_bulk_task.py`` (``make bench-bulk-task``) runs, interleaved over ``--rounds``
rounds, against one sandbox process pinned to its own core:

* ``airflow dags test`` of a DAG whose ``BulkProfilePatchOperator`` gets the items as an in-DAG Python
  list (checkpoints on: Airflow 3.3's task state store, through the in-process execution API);
* a raw ``httpx.Client`` and a raw ``requests.Session``, 8 threads each, sending the same PATCHes.

For each it reports the PATCH phase (first to last PATCH the sandbox received: the rate), the whole
wall time (the task's ``execute()`` for the bulk task, the thread pool for the raw clients) and, for
the task, its checkpoint writes per 1,000 items and the time between the task's start and
``execute()`` (rendering the template fields included), for the list and for the same items as a
``.jsonl`` file. Exit 1 when a target is missed. Results are printed, and written to
``benchmarks/RESULTS.md`` between the ``bulk-task`` markers unless ``--no-write``.

``--celery`` runs the task in the e2e suite's CeleryExecutor + PostgreSQL + Redis deployment instead
(see ``bulk_task_celery.py``), triggered through the REST API each round with the items as a
``.jsonl``, plus the same task with its checkpoints off; its table goes between the
``bulk-task-celery`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (the sandbox, seed and pinning helpers of make bench)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "prefs_bench_bulk_task"
MARKERS = ("<!-- bulk-task:start -->", "<!-- bulk-task:end -->")
CELERY_MARKERS = ("<!-- bulk-task-celery:start -->", "<!-- bulk-task-celery:end -->")

DAG_FILE = """
import json
import time
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_prefs.operators import BulkProfilePatchOperator

ROUND = int({round!r})
SOURCE = {source!r}
if SOURCE == "list":
    ITEMS = [
        {{"alternate_id": f"bench-{{n}}@example.com", "patch": [{{"op": "replace", "path": "/CustomerType",
          "value": f"Round{{ROUND}}-{{n % 7}}"}}]}}
        for n in range({items})
    ]
else:
    ITEMS = SOURCE


class TimedBulk(BulkProfilePatchOperator):
    def execute(self, context):
        started = context["ti"].start_date
        begun = time.time()
        print(f"PREFS_BENCH before_execute={{begun - started.timestamp():.3f}}", flush=True)
        try:
            return super().execute(context)
        finally:
            print(f"PREFS_BENCH execute={{time.time() - begun:.3f}}", flush=True)


with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    TimedBulk(task_id="bulk", items=ITEMS, alternate_id_type="Email", max_concurrency=8)
"""


def patch_of(n: int, round_: int) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/CustomerType", "value": f"Round{round_}-{n % 7}"}]


def write_items(path: Path, items: int, round_: int) -> None:
    """The items of a round as a JSON Lines file (one per profile)."""
    rows = ({"alternate_id": f"bench-{n}@example.com", "patch": patch_of(n, round_)} for n in range(items))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def patch_phase(sandbox: Any) -> tuple[int, float]:
    """(PATCHes received, seconds from the first to the last) since the journal was last cleared."""
    entries = sandbox.control("GET", "journal")["entries"]
    times = sorted(e["received_at"] for e in entries if e["route"] == "profile.patch")
    sandbox.control("DELETE", "journal")
    return len(times), (times[-1] - times[0]) if len(times) > 1 else 0.0


def airflow_env(work: Path, dags: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(work / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


def migrate(env: dict[str, str], home: Path) -> None:
    import airflow

    template = ROOT / "build" / f"airflow-{airflow.__version__}-migrated.db"
    home.mkdir(parents=True, exist_ok=True)
    if not template.exists():
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "airflow.db", template)
    shutil.copyfile(template, home / "airflow.db")


class Task:
    """The bulk task under ``airflow dags test``; each run a fresh metadata database (no state left over)."""

    def __init__(self, work: Path, items: int, source: str) -> None:
        self.work, self.items, self.source = work, items, source
        self.dags = work / f"dags-{source}"
        self.dags.mkdir(parents=True, exist_ok=True)

    def run(self, round_: int, sandbox: Any) -> dict[str, float]:
        source = self.source
        if source == "jsonl":
            path = self.work / f"items-{round_}.jsonl"
            write_items(path, self.items, round_)
            source = str(path)
        (self.dags / "bench_bulk_task.py").write_text(
            DAG_FILE.format(round=round_, source=source, items=self.items, dag_id=DAG_ID)
        )
        env = airflow_env(self.work / f"run-{self.source}-{round_}", self.dags)
        migrate(env, Path(env["AIRFLOW_HOME"]))
        done = subprocess.run([AIRFLOW, "dags", "test", DAG_ID], env=env, capture_output=True, text=True, timeout=900)
        out = done.stdout + done.stderr
        if done.returncode != 0 or "PREFS_BENCH execute=" not in out:
            raise RuntimeError(f"dags test failed ({done.returncode}):\n{out[-4000:]}")
        patches, span = patch_phase(sandbox)
        writes = re.search(r"checkpoint: (\d+) write", out)
        return {
            "rate": patches / span,
            "wall": float(re.findall(r"PREFS_BENCH execute=([\d.]+)", out)[-1]),
            "before_execute": float(re.findall(r"PREFS_BENCH before_execute=([\d.]+)", out)[-1]),
            "writes_per_1000": 1000 * int(writes.group(1)) / self.items if writes else float("nan"),
            "patches": patches,
        }


def raw_client(kind: str, sandbox: Any, items: int) -> Callable[[int], dict[str, float]]:
    """Raw httpx or requests, 8 threads over one pooled client, the same PATCHes as the task."""
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

    hook = MyPreferencesHook()
    url = hook.settings.profiles_url
    headers = {
        **hook.base_headers(),
        "Authorization": hook.token_provider().authorization(hook.client.fetch_token),
        "Content-Type": "application/json",
    }
    if kind == "httpx":
        import httpx

        client: Any = httpx.Client(limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))
    else:
        import requests
        from requests.adapters import HTTPAdapter

        client = requests.Session()
        client.mount("http://", HTTPAdapter(pool_maxsize=16))

    def run(round_: int) -> dict[str, float]:
        def one(n: int) -> None:
            answer = client.patch(
                url,
                params={"alternateId": f"bench-{n}@example.com", "alternateIdType": "Email"},
                # httpx calls a raw body ``content``, requests ``data``: both get the same bytes.
                **{"content" if kind == "httpx" else "data": json.dumps(patch_of(n, round_))},
                headers=headers,
                timeout=30,
            )
            answer.raise_for_status()
            answer.json()

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(items)))
        wall = time.perf_counter() - start
        patches, span = patch_phase(sandbox)
        return {"rate": patches / span, "wall": wall, "patches": patches}

    return run


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000, help="items of the bulk task (profiles in the sandbox)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported; >= 3)")
    parser.add_argument("--celery", action="store_true", help="in the CeleryExecutor + PostgreSQL deployment")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the sandbox and the rest to separate cores")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--note", default="", help="a line about the machine (e.g. shared with other jobs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prefs-bench-task-"))
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "airflow-bench"))
    bench.fresh_token_cache()
    pinning = None if args.no_pin else bench.cores()
    if pinning:
        # Before anything starts: the deployment and its servers inherit the client core.
        os.sched_setaffinity(0, pinning[0])
    seed = work / "seed.json"
    bench.make_seed(seed, args.items)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    sandbox = bench.SandboxProcess(work / "sandbox", seed=seed, pending_delay=1.0)
    results: dict[str, list[dict[str, float]]] = {}
    celery: Any = None
    try:
        if pinning:
            bench.pin(sandbox.process.pid, pinning[1])
        bench.point_airflow_at(sandbox)
        contenders: dict[str, Callable[[int], dict[str, float]]] = {}
        if args.celery:
            from bulk_task_celery import CeleryDeployment

            celery = CeleryDeployment(work / "celery", sandbox.url, write_items)
            celery.start()
            contenders["task"] = lambda r: celery.run(r, args.items, sandbox, checkpoints=True)
            contenders["task_off"] = lambda r: celery.run(r, args.items, sandbox, checkpoints=False)
        else:
            contenders["task"] = lambda r: Task(work, args.items, "list").run(r, sandbox)
        contenders["httpx"] = raw_client("httpx", sandbox, args.items)
        contenders["requests"] = raw_client("requests", sandbox, args.items)
        results = {name: [] for name in contenders}
        sandbox.control("DELETE", "journal")
        for round_ in range(args.rounds):
            order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
            for name in order:
                results[name].append(contenders[name](round_ * 10 + len(results[name])))
                print(name, {k: round(v, 3) for k, v in results[name][-1].items()}, flush=True)
        if not args.celery:
            results["jsonl"] = [Task(work, args.items, "jsonl").run(99, sandbox)]
            print("jsonl", results["jsonl"][-1], flush=True)
    finally:
        if celery is not None:
            celery.close()
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)
    header = (
        f"`python benchmarks/bench_bulk_task.py --items {args.items} --rounds {args.rounds}"
        f"{' --celery' if args.celery else ''}{' --no-pin' if args.no_pin else ''}`, {started}, "
        f"{bench.platform.platform()}, {os.cpu_count()} cores, load average before {load}, "
        f"sandbox on its own core, the rest on the other: {'yes' if pinning else 'no'}"
        + (f"; {args.note}" if args.note else "")
    )
    if args.celery:
        from bulk_task_celery import celery_table

        text, passed = celery_table(results, args.items, args.rounds, header)
    else:
        text, passed = table(results, args, header)
    print(text)
    if not args.no_write:
        where = "in the CeleryExecutor + PostgreSQL deployment" if args.celery else "(`airflow dags test`)"
        heading = f"## A {args.items:,}-item bulk task with checkpoints on {where}"
        write_results(text, CELERY_MARKERS if args.celery else MARKERS, heading)
    return 0 if passed else 1


def table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, header: str) -> tuple[str, bool]:
    task, raw_requests, raw_httpx = results["task"], results["requests"], results["httpx"]
    rate = median([r["rate"] for r in task])
    ratio_requests = median([t["rate"] / r["rate"] for t, r in zip(task, raw_requests, strict=True)])
    ratio_httpx = median([t["rate"] / r["rate"] for t, r in zip(task, raw_httpx, strict=True)])
    wall_ratio = median([t["wall"] / r["wall"] for t, r in zip(task, raw_httpx, strict=True)])
    before_list = median([r["before_execute"] for r in task])
    before_jsonl = results["jsonl"][0]["before_execute"]
    checks = [
        ("PATCH phase vs raw requests, 8 threads", f"{ratio_requests:.2f}x", ">= 0.8x", ratio_requests >= 0.8),
        ("whole task wall time vs raw httpx client", f"{wall_ratio:.2f}x", "<= 1.5x", wall_ratio <= 1.5),
        (
            f"{args.items:,}-item in-DAG list: start to execute() minus the .jsonl run's",
            f"{before_list - before_jsonl:+.2f} s ({before_list:.2f} s vs {before_jsonl:.2f} s)",
            "< 1 s",
            before_list - before_jsonl < 1.0,
        ),
    ]
    lines = [
        header,
        "",
        "One `BulkProfilePatchOperator` task under `airflow dags test` (checkpoints ON: Airflow's task state store), "
        f"{args.items:,} distinct profiles, max_concurrency 8, items as an in-DAG list; raw clients: 8 threads, one "
        f"pooled client, the same PATCHes. Medians of {args.rounds} interleaved rounds.",
        "",
        "| contender | checkpoints | PATCH phase | wall time | store writes / 1,000 items |",
        "|---|---|---|---|---|",
        f"| bulk task (`dags test`) | on | {rate:.0f} PATCH/s | {median([r['wall'] for r in task]):.1f} s (execute) "
        f"| {median([r['writes_per_1000'] for r in task]):.0f} |",
        f"| raw httpx, 8 threads | - | {median([r['rate'] for r in raw_httpx]):.0f} PATCH/s "
        f"| {median([r['wall'] for r in raw_httpx]):.1f} s | - |",
        f"| raw requests, 8 threads | - | {median([r['rate'] for r in raw_requests]):.0f} PATCH/s "
        f"| {median([r['wall'] for r in raw_requests]):.1f} s | - |",
        "",
        f"PATCH phase vs raw httpx: {ratio_httpx:.2f}x (info).",
        "",
        "| check | measured | target | verdict |",
        "|---|---|---|---|",
        *[f"| {name} | {value} | {target} | {'PASS' if ok else 'FAIL'} |" for name, value, target, ok in checks],
    ]
    return "\n".join(lines), all(ok for *_, ok in checks)


def write_results(text: str, markers: tuple[str, str], heading: str) -> None:
    path = HERE / "RESULTS.md"
    current = path.read_text()
    block = f"{markers[0]}\n{text}\n{markers[1]}"
    if markers[0] in current:
        before, rest = current.split(markers[0], 1)
        current = before + block + rest.split(markers[1], 1)[1]
    else:
        current += f"\n{heading}\n\n{block}\n"
    path.write_text(current)


if __name__ == "__main__":
    sys.exit(main())
