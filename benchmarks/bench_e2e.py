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
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
#: Seconds the scheduler sleeps after a loop that found nothing to do (Airflow's default: 1). The same
#: for the three contenders; shorter loops cut the fixed cost of every DAG run (queueing its first task,
#: noticing its last one ended) and refill freed executor slots sooner.
SCHEDULER_IDLE_SLEEP = "0.2"
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
  file and pushing its XCom through the execution API; a bulk task pays them once. A patch task also
  makes task state store calls, each a round trip through the execution API: three in every try (read
  what an earlier run of this task instance recorded, record the operations before sending, forget on
  success; a first try cannot skip the read, since the same try can run twice). That is what
  exactly-once across retries and killed workers costs, and what HttpOperator does not do. Every DAG
  run also pays a fixed cost (the scheduler queueing its first task, the task process starting, the
  scheduler noticing the last one ended: the breakdown above) that no contender avoids, which bounds
  how far below HttpOperator's time per update the bulk task can go at this size (the last line of
  the table).
- **Worker stalls.** Both mapped runs lose most of their wall time between tasks, not in them: in a
  sizeable share of task processes the LocalExecutor worker's supervisor misses the process's exit
  right after its sockets close and sleeps a full `[workers] min_heartbeat_interval` (5 s) in
  `select` before taking the next task (Airflow 3.3.2, any operator; the stall column counts them).
  It is a race, so it varies from run to run and with machine load; it is left at Airflow's default
  here because that is what a user of this deployment gets.
- **Same deployment for everyone.** The scheduler's idle sleep is shortened (the one setting changed
  from the e2e deployment), the bytecode is precompiled, and a warm-up run of one trivial task comes
  first: a fresh api-server answers its first task start in seconds (3.2 s measured) instead of ~20 ms,
  and without the warm-up whichever contender ran first paid it."""


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
    #: Where the wall time went, from Airflow's own timestamps (see :func:`phases`).
    phases: dict[str, float] = field(default_factory=dict)
    #: Task processes whose worker stayed busy long after the task ended, and those extra seconds in all.
    stalls: int = 0
    stalled_seconds: float = 0.0
    #: Every round's run of this contender, in order (the row itself is the median one).
    rounds: list[Contender] = field(default_factory=list)

    @property
    def span(self) -> float:
        """Task span, seconds: the first task instance's start to the last one's end."""
        return self.phases.get("task span", 0.0)

    def per_update(self, updates: int) -> float:
        """Wall time per update, seconds."""
        return self.wall / updates


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200, help="profile updates per contender (default 200)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds (order alternating); each row shows the contender's median run, "
        "the ratios are medians of the per-round ratios (default 3)",
    )
    parser.add_argument("--run-timeout", type=float, default=420.0, help="seconds one DAG run may take")
    parser.add_argument("--no-write", action="store_true", help="print the table only, leave RESULTS.md alone")
    parser.add_argument(
        "--note", default="", help="a line added under the machine in RESULTS.md (e.g. that it was shared)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated contenders to run (bulk, mapped, http) while working; implies --no-write",
    )
    return parser.parse_args()


def http_connection(url: str, token: str) -> dict[str, str]:
    """The ``http`` connection of the HttpOperator baseline: the bearer token as a header in the extra."""
    from bench_profiles import HTTP_CONN_ID

    extra = {"Authorization": f"Bearer {token}", "timeout": 20}
    return {f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps({"conn_type": "http", "host": url, "extra": extra})}


def precompile(prefix: str) -> None:
    """Byte-compile the venv's packages and ours into the private bytecode cache (quick once it is filled).

    Otherwise whichever contender runs first compiles the modules its tasks are the first to import.
    """
    import subprocess
    import sysconfig

    paths = sorted(
        {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(ROOT / "airflow_provider_prefs")}
    )
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *paths],
        env={**os.environ, "PYTHONPYCACHEPREFIX": prefix},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a few third-party files (templates, py2 leftovers) do not compile; that is fine
    )


def warm_up(deployment: Any, timeout: float) -> float:
    """Run the warm-up DAG once (see ``dags/prefs_bench_warmup.py``); return its wall time in seconds."""
    from bench_profiles import WARMUP_DAG_ID
    from e2e.runs import trigger, watch

    [run] = watch(deployment, [trigger(deployment, WARMUP_DAG_ID, None)], timeout, interval=1.0)
    if run.state != "success":
        raise RuntimeError(f"the warm-up run ended {run.state}; see {deployment.process_logs}")
    answer = deployment.api("GET", f"dags/{run.dag_id}/dagRuns/{run.run_id}")
    return (_instant(answer["end_date"]) - _instant(answer["queued_at"])).total_seconds()


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
    tis = task_instances(deployment, run.dag_id, run.run_id)
    contender.task_time = sum(ti["duration"] or 0.0 for ti in tis)
    spans = execute_spans(deployment.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}")
    contender.execute_median = statistics.median(s.seconds for s in spans) if spans else None
    contender.phases = phases(answer, tis, spans)
    contender.stalls, contender.stalled_seconds = worker_stalls(deployment.process_logs / "scheduler.log", tis)
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


@dataclass(frozen=True)
class ExecuteSpan:
    """When one task instance's ``execute()`` started and ended (from its task log)."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Its duration."""
        return (self.end - self.start).total_seconds()


def execute_spans(run_logs: Path) -> list[ExecuteSpan]:
    """Per task log of a run: the end of "Pre Execute" to the start of "Post Execute".

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
            spans.append(ExecuteSpan(marks["pre"], marks["post"]))
    return spans


#: A worker still busy with a task this long after the task instance's end_date counts as stalled.
STALL_SECONDS = 1.0


def worker_stalls(scheduler_log: Path, tis: list[dict[str, Any]]) -> tuple[int, float]:
    """Task instances whose LocalExecutor worker finished its workload long after the task ended.

    The worker's supervisor logs "Workload finished" (in the scheduler's output) once the task
    process has exited; until then it takes no other task. Airflow 3.3's supervisor can miss a task
    process's exit that follows the closing of its sockets and then sleeps in ``select`` for a full
    ``[workers] min_heartbeat_interval`` (5 s) before noticing: a slot lost for ~5 s, for any operator.
    Returns how many task instances stalled that way and the stalled seconds in all.
    """
    ends = {ti["id"]: _instant(ti["end_date"]) for ti in tis if ti.get("id") and ti.get("end_date")}
    stalls, seconds = 0, 0.0
    if not scheduler_log.exists():
        return stalls, seconds
    pattern = re.compile(r"^(\S+) .*Workload finished.*?workload_id=([0-9a-f-]+)")
    for line in scheduler_log.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match and match.group(2) in ends:
            late = (_instant(match.group(1)) - ends[match.group(2)]).total_seconds()
            if late > STALL_SECONDS:
                stalls, seconds = stalls + 1, seconds + late
    return stalls, seconds


#: The phases of a DAG run, in order; together they make its wall time (queued_at to end_date).
PHASES = ("to first start", "task span", "to run end")


def phases(run: dict[str, Any], tis: list[dict[str, Any]], spans: list[ExecuteSpan]) -> dict[str, float]:
    """Split a run's wall time at its first task start and last task end (Airflow's timestamps).

    ``to first start``: trigger (queued_at) to the first task instance's start_date (scheduling,
    queueing, the executor picking it up); ``task span``: first start to last end_date (every task
    instance's process, its DAG parse and its ``execute()``); ``to run end``: the last task end to the
    run's end_date (the scheduler noticing). ``to first start`` is split at the run's start_date and
    the first task instance's queued_when: ``run started`` (the scheduler picking the run up),
    ``first queued`` (creating and queueing its task instances), ``first started`` (the executor
    handing it to a worker, the task process starting). With one task instance, the task span is
    further split at its ``execute()`` (task log): ``start-up`` before it, ``execute()``, ``wrap-up``.
    """
    starts = [_instant(ti["start_date"]) for ti in tis if ti.get("start_date")]
    ends = [_instant(ti["end_date"]) for ti in tis if ti.get("end_date")]
    if not starts or not ends or not run.get("end_date"):
        return {}
    queued, first, last, end = _instant(run["queued_at"]), min(starts), max(ends), _instant(run["end_date"])
    found = {
        "to first start": (first - queued).total_seconds(),
        "task span": (last - first).total_seconds(),
        "to run end": (end - last).total_seconds(),
    }
    queued_tis = [_instant(ti["queued_when"]) for ti in tis if ti.get("queued_when")]
    if run.get("start_date") and queued_tis:
        started, first_queued = _instant(run["start_date"]), min(queued_tis)
        found["run started"] = (started - queued).total_seconds()
        found["first queued"] = (first_queued - started).total_seconds()
        found["first started"] = (first - first_queued).total_seconds()
    if len(tis) == 1 and len(spans) == 1:
        found["start-up"] = (spans[0].start - first).total_seconds()
        found["execute()"] = spans[0].seconds
        found["wrap-up"] = (last - spans[0].end).total_seconds()
    return found


def _wall(c: Contender) -> float:
    return c.wall


def _span(c: Contender) -> float:
    return c.span


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text, a rule under the first (the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def _measured(c: Contender) -> bool:
    return c.state == "success" and not c.problem and c.wall > 0


def median_run(runs: list[Contender]) -> Contender:
    """The run of median wall time (the lower middle one for an even count), with every run in ``rounds``."""
    chosen = sorted(runs, key=lambda c: c.wall)[(len(runs) - 1) // 2]
    return dataclasses.replace(chosen, rounds=list(runs))


def round_ratios(http: Contender, c: Contender, of: Callable[[Contender], float]) -> list[float]:
    """HttpOperator's ``of`` divided by the contender's, per round (runs of one round ran back to back)."""
    return [of(h) / of(r) for h, r in zip(http.rounds, c.rounds, strict=False) if _measured(h) and _measured(r)]


def _median_ratio(ratios: list[float]) -> str:
    return "-" if not ratios else f"{statistics.median(ratios):.{1 if statistics.median(ratios) >= 1 else 2}f}x"


def table(contenders: list[Contender], updates: int, parallelism: str, warm_up_seconds: float) -> tuple[str, bool]:
    """The aligned table (rows, the breakdown, then the target line) and whether the target is met."""
    http = next(c for c in contenders if c.key == "http")
    header = (
        "contender",
        "tasks",
        "auth",
        "run",
        "wall time",
        "time/update",
        "vs (c)",
        "in tasks",
        "execute()",
        "requests/update",
        "task span",
        "span/update",
        "span vs (c)",
        "worker stalls",
    )
    rows = [header]
    for c in contenders:
        ok = _measured(c)
        against = ok and _measured(http)
        rows.append(
            (
                c.label,
                c.tasks,
                c.auth,
                c.state if ok or not c.problem else f"{c.state}: {c.problem}",
                f"{c.wall:.1f} s",
                f"{c.per_update(updates) * 1000:.1f} ms",
                "-" if not against else "1.0x (baseline)" if c is http else _median_ratio(round_ratios(http, c, _wall)),
                f"{c.task_time:.1f} s",
                "-" if c.execute_median is None else f"{c.execute_median * 1000:.0f} ms",
                f"{c.requests / updates:.3f} ({c.token_requests} token)",
                f"{c.span:.1f} s",
                f"{c.span / updates * 1000:.1f} ms",
                "-"
                if not (against and c.span and http.span)
                else "1.0x"
                if c is http
                else _median_ratio(round_ratios(http, c, _span)),
                f"{c.stalls} ({c.stalled_seconds:.0f} s)" if ok else "-",
            )
        )
    lines = _aligned(rows)
    lines += ["", "Where the wall time went (seconds; the three phases add up to the wall time):", ""]
    breakdown: list[tuple[str, ...]] = [("contender", *PHASES, "to first start, split", "inside the single task")]
    for c in contenders:
        if c.phases:
            split, inside = (
                ", ".join(f"{name} {c.phases[name]:.2f}" for name in names if name in c.phases) or "-"
                for names in (("run started", "first queued", "first started"), ("start-up", "execute()", "wrap-up"))
            )
            breakdown.append((c.label, *(f"{c.phases[name]:.2f}" for name in PHASES), split, inside))
    lines += _aligned(breakdown)
    bulk = next(c for c in contenders if c.key == "bulk")
    mapped = next(c for c in contenders if c.key == "mapped")
    measured = _measured(bulk) and _measured(http)
    bulk_ratios = round_ratios(http, bulk, _wall)
    ratio = statistics.median(bulk_ratios) if measured and bulk_ratios else 0.0
    met = measured and ratio >= TARGET_RATIO
    mapped_ratios = round_ratios(http, mapped, _wall)
    # The same comparison without what happens between tasks (scheduling, worker stalls): the task instances'
    # own durations, summed over the run.
    timed = all(c.task_time > 0 for c in http.rounds + mapped.rounds)
    task_ratios = round_ratios(http, mapped, lambda c: c.task_time) if timed else []
    lines += ["", f"Per round ({len(http.rounds)} interleaved, order alternating), wall time in seconds:", ""]
    lines += _aligned(
        [
            ("contender", "wall time per round", "vs (c) per round", "execute() per round"),
            *[
                (
                    c.label,
                    ", ".join(f"{r.wall:.1f}" for r in c.rounds) or "-",
                    ", ".join(f"{x:.2f}x" for x in round_ratios(http, c, _wall)) if c is not http else "-",
                    ", ".join(
                        "-" if r.execute_median is None else f"{r.execute_median * 1000:.0f} ms" for r in c.rounds
                    ),
                )
                for c in contenders
                if c.rounds
            ],
        ]
    )
    lines += [
        "",
        f"{updates} updates per contender; LocalExecutor, core.parallelism {parallelism}, SQLite, one run at a time,",
        f"scheduler.scheduler_idle_sleep_time {SCHEDULER_IDLE_SLEEP} s (Airflow's default: 1) for all three;",
        "bytecode precompiled (PYTHONPYCACHEPREFIX) as on a pip-installed worker; a warm-up run of one trivial",
        f"task first (not measured: {warm_up_seconds:.1f} s): no contender pays a new deployment's first-task costs.",
        "wall time (the headline): the DAG run's queued_at to end_date, what a user waits for after Trigger;",
        "time/update = wall time / updates; vs (c): HttpOperator's time per update divided by this contender's.",
        "in tasks: the sum of its task instances' durations;",
        "execute(): median per task instance of the operator's own work (task log, Pre to Post Execute);",
        "requests/update: every request the sandbox received during the run / updates (token requests included).",
        "task span (a second measure, same rule for all three): first task instance start_date to last end_date,",
        "i.e. the wall time without the run's scheduling before the first task and after the last one.",
        "start-up: task start_date to execute() (process, DAG parse, connection); wrap-up: execute() to end_date.",
        f"worker stalls: task instances whose LocalExecutor worker stayed busy > {STALL_SECONDS:g} s after the task's",
        "end_date (the supervisor missing the task process's exit, then sleeping [workers] min_heartbeat_interval,",
        "5 s), and the seconds lost in all; a stalled worker starts no other task, so mapped runs lose",
        "about (stalled seconds / core.parallelism) of wall time to it.",
        f"target: bulk's time per update >= {TARGET_RATIO:g}x lower than mapped HttpOperator's (wall time): "
        f"{ratio:.1f}x -> {'PASS' if met else 'FAIL'}",
        "target: a mapped ProfilePatchOperator task no slower than a mapped HttpOperator task doing the same PATCH "
        f"(time per update, (c) / (b), median of per-round ratios >= 1.0x): {_median_ratio(mapped_ratios)} -> "
        f"{'PASS' if mapped_ratios and statistics.median(mapped_ratios) >= 1.0 else 'FAIL'}",
        "info: the same per task instance (in tasks, (c) / (b), median of per-round ratios): "
        f"{_median_ratio(task_ratios)} (rounds: {', '.join(f'{r:.2f}x' for r in task_ratios) or '-'})",
    ]
    if measured and "execute()" in bulk.phases:
        # What the bulk run costs besides its own work: the part no operator code can remove.
        fixed = bulk.wall - bulk.phases["execute()"]
        lines += [
            f"bulk's run outside its execute() (scheduling, task start-up and wrap-up): {fixed:.2f} s; with an instant",
            f"execute() its time per update would still be {fixed / updates * 1000:.1f} ms, "
            f"only {http.per_update(updates) / (fixed / updates):.0f}x lower than HttpOperator's.",
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
    from bench_profiles import DAG_IDS, WARMUP_DAG_ID
    from e2e.deployment import TRANSPORT, Deployment, copy_dags
    from e2e.paths import BUILD

    # Each task process imports Airflow, its providers and ours. A pip-installed worker has them
    # byte-compiled; this venv has no .pyc (uv does not compile) and PYTHONDONTWRITEBYTECODE may be
    # inherited, which would make every task compile thousands of modules from source again. A
    # private bytecode cache gives the deployment what a real worker has, for every contender alike.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(BUILD / "bench-e2e" / "pycache")
    precompile(os.environ["PYTHONPYCACHEPREFIX"])

    from airflow_provider_prefs.sandbox import SandboxServer
    from airflow_provider_prefs.sandbox.connections import MP_STATIC_TOKEN, airflow_conn_env

    contenders = [
        Contender("bulk", "(a) BulkProfilePatchOperator", "1", "OAuth"),
        Contender("mapped", "(b) mapped ProfilePatchOperator", str(args.updates), "OAuth"),
        Contender("http", "(c) mapped HttpOperator (http provider)", str(args.updates), "static bearer"),
    ]
    only = {key for key in args.only.split(",") if key}
    unknown = only - {c.key for c in contenders}
    if unknown:
        raise SystemExit(f"--only: unknown contender(s) {sorted(unknown)}")
    started, began = time.monotonic(), datetime.now(timezone.utc)
    where = machine()
    with SandboxServer() as sandbox:
        token_cache = BUILD / "bench-e2e" / "token-cache"
        connections = {
            **airflow_conn_env(sandbox.url, **TRANSPORT),
            **http_connection(sandbox.url, MP_STATIC_TOKEN),
            # Named here (not left to the default under AIRFLOW_HOME) so that it can be emptied between runs.
            "AIRFLOW__PREFS__TOKEN_CACHE_DIR": str(token_cache),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": SCHEDULER_IDLE_SLEEP,
        }
        dags = copy_dags(BUILD / "bench-e2e" / "dags", sorted(BENCH_DAGS.glob("*.py")))
        deployment = Deployment(BUILD / "bench-e2e" / "airflow", dags, connections)
        try:
            deployment.start()
            deployment.wait_for_dags([*DAG_IDS.values(), WARMUP_DAG_ID])
            print(f"deployment up after {time.monotonic() - started:.0f} s", flush=True)
            warm = warm_up(deployment, args.run_timeout)
            print(f"warm-up run (not measured): {warm:.1f} s", flush=True)
            runs: dict[str, list[Contender]] = {c.key: [] for c in contenders}
            for round_ in range(args.rounds):
                # Interleaved, the order alternating: a slow spell of the shared machine hits every contender.
                for template in contenders if round_ % 2 == 0 else list(reversed(contenders)):
                    if only and template.key not in only:
                        continue
                    contender = dataclasses.replace(template)
                    run_contender(contender, deployment, sandbox, args.updates, args.run_timeout, token_cache)
                    runs[contender.key].append(contender)
                    print(
                        f"round {round_ + 1}: {contender.label}: {contender.state} in {contender.wall:.1f} s "
                        f"{contender.problem}",
                        flush=True,
                    )
        finally:
            deployment.stop()
    contenders = [median_run(runs[c.key]) if runs[c.key] else c for c in contenders]
    text, _ = table(contenders, args.updates, deployment.env["AIRFLOW__CORE__PARALLELISM"], warm)
    total = time.monotonic() - started
    print("\n" + text)
    if not (args.no_write or only):
        write_results(
            f"{HEADING}\n\n"
            f"- Date: {began:%Y-%m-%d %H:%M} UTC\n- Machine: {where}\n"
            + (f"- Note: {args.note}\n" if args.note else "")
            + f"- Command: `make bench-e2e` (= `python benchmarks/bench_e2e.py --updates {args.updates} "
            f"--rounds {args.rounds}`; "
            f"wall time {total / 60:.1f} min, deployment start included)\n\n```\n{text}\n```\n\n{NOTES}"
        )
    # A missed target is a result (in the table); a run that failed or lost updates is not a measurement.
    ran = [c for c in contenders if not only or c.key in only]
    return 0 if all(c.state == "success" and not c.problem for c in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
