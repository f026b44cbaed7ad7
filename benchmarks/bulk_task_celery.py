"""``bench_bulk_task.py --celery``: the bulk task in the e2e suite's CeleryExecutor + PostgreSQL + Redis deployment.

The deployment, its servers and the way runs are triggered are the e2e suite's (``tests/e2e``),
imported, not copied. Each round triggers the DAG through the REST API with a fresh ``.jsonl`` of
the items in the run's conf, waits for the run, and reads:

* the PATCH phase from the sandbox journal (first to last PATCH received);
* ``execute()``'s time and the runner's ``checkpoint: N write(s)`` line from the task log, the task
  instance's own duration (start to end: process start, DAG parse, ``execute()``, wrap-up) from the
  REST API;
* the latency of the task state store calls the api-server served meanwhile (its access log logs
  ``duration_us`` per request; the supervisor's hop to it is not included);
* the CPU seconds each component used during the run (process trees sampled every half second),
  to tell "the store is slow" from "the one core is full".

A round with ``checkpoints=False`` runs the same task with the task state store taken out of its
context: the same deployment without the checkpoint's cost, to attribute the difference.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The deployment harness is the e2e suite's (a package under tests/), as in bench_e2e.py.
sys.path.insert(0, str(ROOT / "tests"))

DAG_ID = "prefs_bench_bulk_task_celery"
#: Seconds one run may take (10,000 items take ~15 s on a quiet machine).
RUN_TIMEOUT = 900.0
#: Items of the warm-up run (not measured): a fresh deployment's first task pays one-time costs.
WARM_UP_ITEMS = 200

DAG_FILE = '''
"""One bulk task; items (a .jsonl path) and whether its checkpoints are on come with the run's conf."""
import time
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_prefs.operators import BulkProfilePatchOperator


class TimedBulk(BulkProfilePatchOperator):
    def execute(self, context):
        started = context["ti"].start_date
        begun = time.time()
        print(f"PREFS_BENCH before_execute={begun - started.timestamp():.3f}", flush=True)
        if not context["params"]["checkpoints"]:
            # The same task without Airflow's task state store: the runner then records nothing.
            context = {**context, "task_state_store": None}
        try:
            return super().execute(context)
        finally:
            print(f"PREFS_BENCH execute={time.time() - begun:.3f}", flush=True)


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"items": "", "checkpoints": True},
):
    TimedBulk(task_id="bulk", items="{{ params['items'] }}", alternate_id_type="Email", max_concurrency=8)
'''.replace("DAG_ID", repr(DAG_ID))

#: An api-server access log line of a task state store call (Airflow 3.3's ``http.access`` logger).
STORE_CALL = re.compile(r"duration_us=(\d+) .*method=(GET|PUT|DELETE) path=/execution/store/ti/")


class CeleryDeployment:
    """PostgreSQL, Redis, the components and one Celery worker; ``close()`` stops them all, whatever happened."""

    def __init__(self, work: Path, sandbox_url: str, write_items: Callable[[Path, int, int], None]) -> None:
        self.work, self.sandbox_url, self.write_items = work, sandbox_url, write_items
        self.stack = contextlib.ExitStack()
        self.deployment: Any = None
        #: Process-tree roots of PostgreSQL and Redis (for the CPU figures).
        self.servers: dict[str, int] = {}

    def start(self) -> None:
        """Start the servers and the deployment, wait for the worker and the DAG, run the warm-up."""
        from e2e.deployment import Backend, Deployment, copy_dags
        from e2e.services import celery_services

        from airflow_provider_prefs.sandbox.connections import airflow_conn_env

        postgres, redis = self.stack.enter_context(celery_services(self.work / "services"))
        self.servers = {server.name: server.process.pid for server in (postgres, redis) if server.process}
        source = self.work / "dag-source" / "prefs_bench_bulk_task_celery.py"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(DAG_FILE)
        dags = copy_dags(self.work / "dags", [source])
        # One worker, one slot: one task runs at a time, as in the `dags test` mode.
        backend = Backend(
            executor="CeleryExecutor", database_url=postgres.url, broker_url=redis.url, workers=1, worker_concurrency=1
        )
        connections = {
            **airflow_conn_env(self.sandbox_url),
            "AIRFLOW__PREFS__TOKEN_CACHE_DIR": str(self.work / "token-cache"),
        }
        self.deployment = Deployment(self.work / "airflow", dags, connections, backend)
        self.stack.callback(self.deployment.stop)  # stopped before the servers (the stack unwinds backwards)
        self.deployment.start()
        self.deployment.wait_for_log("worker-1", " ready.")
        self.deployment.wait_for_dags([DAG_ID])
        items = self.work / "warm-up.jsonl"
        self.write_items(items, WARM_UP_ITEMS, -1)
        self.trigger_and_wait(items, checkpoints=True)

    def close(self) -> None:
        """Stop the deployment, then PostgreSQL and Redis."""
        self.stack.close()

    def trigger_and_wait(self, items: Path, *, checkpoints: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Trigger a run of the bulk DAG and wait for it; (the run, its task instance) as the REST API shows them."""
        from e2e.runs import trigger

        run = trigger(self.deployment, DAG_ID, None, {"items": str(items), "checkpoints": checkpoints})
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            answer = self.deployment.api("GET", f"dags/{DAG_ID}/dagRuns/{run.run_id}")
            if answer["state"] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.run_id} not finished after {RUN_TIMEOUT} s")
            time.sleep(0.5)
        ti = self.deployment.api("GET", f"dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/bulk")
        if answer["state"] != "success":
            raise RuntimeError(f"run {run.run_id} {answer['state']} (task {ti['state']}); see {self.deployment.home}")
        return answer, ti

    def run(self, round_: int, items: int, sandbox: Any, *, checkpoints: bool) -> dict[str, float]:
        """One measured run: the figures of one row (see the module docstring)."""
        from bench_bulk_task import patch_phase

        path = self.work / f"items-{round_}.jsonl"
        self.write_items(path, items, round_)
        access_log = self.deployment.process_logs / "api-server.log"
        offset = access_log.stat().st_size
        with CpuSampler(self.component_roots(sandbox)) as cpu:
            run, ti = self.trigger_and_wait(path, checkpoints=checkpoints)
        path.unlink()
        logs = self.deployment.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run['dag_run_id']}"
        text = "".join(log.read_text(errors="replace") for log in logs.glob("**/attempt=1.log"))
        executed = re.findall(r"PREFS_BENCH execute=([\d.]+)", text)
        if not executed:
            raise RuntimeError(f"no execute() time in the task log under {logs}")
        writes = re.search(r"checkpoint: (\d+) write", text)
        with access_log.open("rb") as log:
            log.seek(offset)
            calls = STORE_CALL.findall(log.read().decode(errors="replace"))
        puts = sorted(int(us) / 1000 for us, method in calls if method == "PUT")
        patches, span = patch_phase(sandbox)
        return {
            "rate": patches / span,
            "wall": float(executed[-1]),
            "task": float(ti["duration"]),
            "run": _seconds(run["queued_at"], run["end_date"]),
            "before_execute": float(re.findall(r"PREFS_BENCH before_execute=([\d.]+)", text)[-1]),
            "writes_per_1000": 1000 * int(writes.group(1)) / items if writes else float("nan"),
            "store_calls": float(len(calls)),
            "put_median_ms": statistics.median(puts) if puts else float("nan"),
            "put_p95_ms": puts[int(0.95 * (len(puts) - 1))] if puts else float("nan"),
            "patches": patches,
            **{f"cpu {name}": seconds for name, seconds in cpu.seconds.items()},
        }

    def component_roots(self, sandbox: Any) -> dict[str, int]:
        """Process-tree roots by component name: the deployment's, the servers', the sandbox's."""
        roots = {name: process.pid for name, process in self.deployment.processes.items()}
        return {**roots, **self.servers, "sandbox": sandbox.process.pid}


class CpuSampler:
    """CPU seconds (user + system) each component's process tree used between ``__enter__`` and ``__exit__``.

    Sampled every half second, so a process that starts and ends between two samples (none here: the
    task process lives for the whole run) or the last half second of one that exits is missed.
    """

    INTERVAL = 0.5

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        # One pass over /proc per sample: psutil's children() scans every process once per call, and
        # per root that cost ~3x as much CPU on the core the task shares with this sampler.
        children: dict[int, list[int]] = {}
        used: dict[int, float] = {}
        for process in psutil.process_iter(["ppid", "cpu_times"]):
            times = process.info["cpu_times"]
            if times is not None:  # a process that went away or may not be read
                children.setdefault(process.info["ppid"], []).append(process.pid)
                used[process.pid] = times.user + times.system
        for name, root in self.roots.items():
            tree = [root]
            while tree:
                pid = tree.pop()
                if pid in used:
                    self.last[pid] = (name, used[pid])
                tree.extend(children.get(pid, ()))

    def _loop(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self.first = {pid: used for pid, (_, used) in self.last.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        for pid, (name, used) in self.last.items():
            # A process started after __enter__ (the task process) counts from zero.
            self.seconds[name] = self.seconds.get(name, 0.0) + used - self.first.get(pid, 0.0)


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    def instant(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (instant(end) - instant(start)).total_seconds()


def celery_table(results: dict[str, list[dict[str, float]]], items: int, rounds: int, header: str) -> tuple[str, bool]:
    """The Markdown section: the rows, the checks against the targets, where the CPU went."""
    on, off = results["task"], results["task_off"]
    # A raw client's whole "task" is its wall time: compared with the task instance's start to end.
    raw_httpx, raw_requests = ([{**r, "task": r["wall"]} for r in results[k]] for k in ("httpx", "requests"))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def ratio(ours: list[dict[str, float]], key: str, baseline: list[dict[str, float]]) -> float:
        """Median of the per-round ratios (rows of one round ran next to each other)."""
        return statistics.median(o[key] / b[key] for o, b in zip(ours, baseline, strict=True))

    rate_vs_requests = ratio(on, "rate", raw_requests)
    task_vs_httpx = ratio(on, "task", raw_httpx)
    checks = [
        ("PATCH phase vs raw requests, 8 threads", f"{rate_vs_requests:.2f}x", ">= 0.8x", rate_vs_requests >= 0.8),
        (
            "whole task (task instance start to end) vs raw httpx, 8 threads",
            f"{task_vs_httpx:.2f}x",
            "<= 1.5x",
            task_vs_httpx <= 1.5,
        ),
    ]
    infos = [
        ("PATCH phase vs raw httpx, 8 threads", f"{ratio(on, 'rate', raw_httpx):.2f}x"),
        ("execute() vs raw httpx wall time", f"{ratio(on, 'wall', raw_httpx):.2f}x"),
        ("whole task vs raw requests wall time", f"{ratio(on, 'task', raw_requests):.2f}x"),
        ("PATCH phase, checkpoints on vs off (same deployment)", f"{ratio(on, 'rate', off):.2f}x"),
        ("PATCH phase, checkpoints off vs raw requests", f"{ratio(off, 'rate', raw_requests):.2f}x"),
    ]

    def task_row(label: str, rows: list[dict[str, float]], checkpoints: str) -> str:
        latency = (
            f"{med(rows, 'put_median_ms'):.1f} / {med(rows, 'put_p95_ms'):.1f} ms"
            if rows[0]["store_calls"]
            else "- (no store call)"
        )
        writes = f"{med(rows, 'writes_per_1000'):.1f}" if rows[0]["store_calls"] else "0"
        return (
            f"| {label} | {checkpoints} | {med(rows, 'rate'):.0f} PATCH/s | {med(rows, 'wall'):.1f} s "
            f"| {med(rows, 'task'):.1f} s | {med(rows, 'run'):.1f} s | {writes} | {latency} |"
        )

    def raw_row(label: str, rows: list[dict[str, float]]) -> str:
        wall = f"{med(rows, 'wall'):.1f} s"
        return f"| {label} | - | {med(rows, 'rate'):.0f} PATCH/s | {wall} | {wall} | - | - | - |"

    components = sorted({k for r in on + off for k in r if k.startswith("cpu ")}, key=lambda k: -med(on, k))
    cpu_rows = [
        f"| {name[4:]} | {med(on, name):.1f} s | {med(off, name):.1f} s |"
        for name in components
        if med(on, name) >= 0.05
    ]
    client_side = [k for k in components if k != "cpu sandbox"]
    lines = [
        header,
        "",
        f"One `BulkProfilePatchOperator` task (max_concurrency 8, {items:,} distinct profiles, the items as a `.jsonl` "
        "in the run's conf) in the e2e suite's CeleryExecutor deployment: PostgreSQL, Redis, api-server, scheduler, "
        "dag-processor, triggerer, one Celery worker with one slot, triggered through the REST API; checkpoints on "
        "(Airflow's task state store through the execution API) and, to attribute their cost, off. Raw clients: 8 "
        f"threads, one pooled client, the same PATCHes. Medians of {rounds} interleaved rounds (order alternating).",
        "",
        "| contender | checkpoints | PATCH phase | execute() / wall | task instance | DAG run | store writes / 1,000 "
        "items | store PUT latency median / p95 |",
        "|---|---|---|---|---|---|---|---|",
        task_row("bulk task, Celery + PostgreSQL", on, "on"),
        task_row("bulk task, Celery + PostgreSQL", off, "off"),
        raw_row("raw httpx, 8 threads", raw_httpx),
        raw_row("raw requests, 8 threads", raw_requests),
        "",
        "| check | measured (median of per-round ratios) | target | verdict |",
        "|---|---|---|---|",
        *[f"| {name} | {value} | {target} | {'PASS' if ok else 'FAIL'} |" for name, value, target, ok in checks],
        *[f"| {name} | {value} | info | info |" for name, value in infos],
        "",
        "CPU seconds per component during a run (trigger to end; process trees sampled every 0.5 s), medians:",
        "",
        "| component | checkpoints on | checkpoints off |",
        "|---|---|---|",
        *cpu_rows,
        f"| all but the sandbox | {statistics.median(sum(r[k] for k in client_side) for r in on):.1f} s "
        f"| {statistics.median(sum(r[k] for k in client_side) for r in off):.1f} s |",
        "",
        "PATCH phase: first to last PATCH the sandbox received. execute(): the operator's `execute()` (task log). "
        "Task instance: its start_date to end_date (task process start, DAG parse, execute(), wrap-up). DAG run: "
        "queued_at to end_date. Store PUT latency: the api-server's own time per `PUT /execution/store/ti/...` "
        "(its access log's duration_us), not the task process -> supervisor -> api-server hops.",
    ]
    return "\n".join(lines), all(ok for *_, ok in checks)
