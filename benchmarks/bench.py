"""`make bench`: every performance target of issue #15, measured like for like in one run.

Rules every row follows:

* contender and baseline run **interleaved**, round by round (the order alternates), over
  ``--rounds`` rounds (at least 5 for a real run); each round gives one ratio, the row reports the
  **median ratio** (and the median rates);
* baselines do the same work on the same endpoint: a reused ``HttpHook`` against a reused hook,
  a fresh ``HttpHook`` that fetches its own bearer token against a fresh provider hook (which finds
  its token in the worker-wide token cache), raw ``requests`` with as many threads as bulk has in
  flight;
* the sandbox runs in its own process; when ``taskset`` is available and there are 2+ cores, the
  sandbox is pinned to the last core and this client to the others;
* each row prints the target from the issue and PASS/FAIL (``info`` rows have no target).

    python benchmarks/bench.py [--rounds 5] [--patches 400] [--bulk 2000] [--bulk-memory 50000]

Smoke test (seconds, figures meaningless): ``--rounds 2 --patches 50 --bulk 200 --bulk-memory 500
--tasks 20 --hooks 200 --waits 50 --wan-items 32``. Only the HTTP and HTTPS rows of the hook against a raw
keep-alive ``requests.Session`` (about a minute): ``--hook-vs-raw-only``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_prefs.sandbox.process import SandboxProcess

ROOT = Path(__file__).resolve().parents[1]
OFFER_ID = "fallbackOffer1234"


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    ours: str
    baseline: str
    measure: str
    target: str
    verdict: str


ROWS: list[Row] = []


def add_row(benchmark: str, ours: str, baseline: str, measure: str, target: str, passed: bool | None) -> None:
    """Record a row; ``passed`` None marks an informational row without a target."""
    verdict = "info" if passed is None else ("PASS" if passed else "FAIL")
    ROWS.append(Row(benchmark, ours, baseline, measure, target, verdict))
    print(f"  {verdict:4} {benchmark}: {ours} vs {baseline} -> {measure} (target {target})", flush=True)


# ----- measuring ----------------------------------------------------------------------------------


def rss_mib() -> float:
    """Current resident set size of this process."""
    return _status_mib("VmRSS:")


def peak_rss_mib() -> float:
    """Peak resident set size since the last :func:`reset_peak_rss`."""
    return _status_mib("VmHWM:")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Comparison:
    """Median rates of contender and baseline and the median of the per-round ratios."""

    ours: float
    baseline: float
    ratio: float


def interleaved(rounds: int, ours: Callable[[], float], baseline: Callable[[], float]) -> Comparison:
    """Run both ``rounds`` times, alternating which goes first; ratio per round, then the median."""
    mine: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        if index % 2:
            theirs.append(baseline())
            mine.append(ours())
        else:
            mine.append(ours())
            theirs.append(baseline())
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    return Comparison(statistics.median(mine), statistics.median(theirs), statistics.median(ratios))


def ratio_row(name: str, unit: str, result: Comparison, target: float | None, rounds: int) -> None:
    """A row for an :func:`interleaved` comparison against ``target`` (a minimum ratio)."""
    add_row(
        name,
        f"{result.ours:.0f} {unit}",
        f"{result.baseline:.0f} {unit}",
        f"{result.ratio:.2f}x (median of {rounds})",
        "info" if target is None else f">= {target:g}x",
        None if target is None else result.ratio >= target,
    )


# ----- environment --------------------------------------------------------------------------------


class Endpoint(Protocol):
    """Where the clients send their requests: the sandbox itself or a latency proxy in front of it."""

    url: str
    verify: bool | str


def cores() -> tuple[set[int], set[int]] | None:
    """(client cores, server cores) when pinning is possible, else None."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") is None or len(available) < 2:
        return None
    return set(available[:-1]), {available[-1]}


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus`` with taskset."""
    subprocess.run(
        ["taskset", "-a", "-p", "-c", ",".join(map(str, sorted(cpus))), str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class WanProxy:
    """``wan_proxy.py`` in its own process, adding ``rtt_ms`` of round-trip time in front of a sandbox."""

    def __init__(self, sandbox: SandboxProcess, rtt_ms: float) -> None:
        scheme, _, address = sandbox.url.partition("://")
        host, _, port = address.partition(":")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "wan_proxy.py"), host, port, str(rtt_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"{scheme}://127.0.0.1:{self.process.stdout.readline().strip()}"
        self.verify = sandbox.verify

    def stop(self) -> None:
        """Stop the proxy process."""
        self.process.terminate()
        self.process.wait(10)


def make_seed(path: Path, profiles: int) -> None:
    """The default seed plus ``profiles`` generated profiles for client DEMO (bench-<n>@example.com)."""
    from airflow_provider_prefs.sandbox.seed import add_seed_profile, default_seed_data, iter_seed_profiles

    seed = default_seed_data()
    template = dict(next(iter_seed_profiles(seed, "DEMO")))
    for n in range(profiles):
        add_seed_profile(seed, "DEMO", f"bench-{n}@example.com", "Email", {**template, "ProfileId": 900000 + n})
    path.write_text(json.dumps(seed))


def point_airflow_at(endpoint: Endpoint) -> None:
    """AIRFLOW_CONN_* for the provider connections and two plain HTTP connections (API and IMS)."""
    from airflow_provider_prefs.sandbox.connections import airflow_conn_env

    extras = {"ca_bundle": endpoint.verify} if isinstance(endpoint.verify, str) else {}
    os.environ.update(airflow_conn_env(endpoint.url, **extras))
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": endpoint.url + "/data/core/dps"})
    os.environ["AIRFLOW_CONN_BENCH_IMS"] = json.dumps({"conn_type": "http", "host": endpoint.url})


def fresh_token_cache() -> None:
    """An empty worker-wide token cache, so token counts start from zero."""
    os.environ["AIRFLOW__PREFS__TOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="prefs-bench-tokens-")


def offer_patch(i: int) -> list[dict[str, Any]]:
    """A small patch that changes the offer each time."""
    return [{"op": "replace", "path": "/description", "value": f"bench {i}"}]


def profile_patch(i: int) -> list[dict[str, Any]]:
    """A small patch of one generated profile."""
    return [{"op": "replace", "path": "/CustomerType", "value": f"Bulk{i % 7}"}]


# ----- rows ---------------------------------------------------------------------------------------


class OfferClients:
    """The provider hook and its baselines, all patching the same offer on one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        import requests
        from airflow.providers.http.hooks.http import HttpHook

        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        self.endpoint = endpoint
        self.hook = OfferLibraryHook()
        self.hook.get_offer(OFFER_ID)  # token fetched once, outside the timing
        auth = self.hook.client.auth
        assert auth is not None
        self.headers = {
            **self.hook.base_headers(),
            "Authorization": auth.authorization(self.hook.client.fetch_token),
            "Content-Type": "application/json",
        }
        self.url = self.hook.settings.offer_url(OFFER_ID)
        self.path = self.url.split("/data/core/dps", 1)[1] + "?offer-type=fallback"
        self.raw = requests.Session()
        self.http_hook = HttpHook(method="PATCH", http_conn_id="bench_http")
        credentials = self.hook.token_provider().credentials
        assert credentials is not None
        self.form = credentials.form()

    def raw_patch(self, i: int) -> None:
        """Raw keep-alive ``requests.Session``, the floor of any client over requests."""
        answer = self.raw.patch(
            self.url,
            params={"offer-type": "fallback"},
            json=offer_patch(i),
            headers=self.headers,
            timeout=30,
            verify=self.endpoint.verify,
        )
        answer.raise_for_status()
        answer.json()

    def hook_patch(self, i: int) -> None:
        """The reused provider hook (validation and exactly-once included)."""
        self.hook.change_offer(OFFER_ID, patch=offer_patch(i))

    def http_hook_patch(self, i: int, hook: Any = None, token: str | None = None) -> None:
        """``HttpHook.run`` PATCH (the reused one unless ``hook`` is given)."""
        headers = self.headers if token is None else {**self.headers, "Authorization": f"Bearer {token}"}
        (hook or self.http_hook).run(
            self.path, json=offer_patch(i), headers=headers, extra_options={"verify": self.endpoint.verify}
        ).json()

    def fresh_hook_task(self, i: int) -> None:
        """What one operator task does: a new provider hook (token from the shared cache), one PATCH."""
        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        hook = OfferLibraryHook()
        hook.change_offer(OFFER_ID, patch=offer_patch(i))
        hook.close()

    def fresh_http_hook_task(self, i: int) -> None:
        """What one HttpOperator task must do: a new HttpHook gets a bearer token, another PATCHes."""
        from airflow.providers.http.hooks.http import HttpHook

        verify = {"verify": self.endpoint.verify}
        token_hook = HttpHook(method="POST", http_conn_id="bench_ims")
        token = token_hook.run("/ims/token/v3", data=self.form, extra_options=verify).json()["access_token"]
        self.http_hook_patch(i, HttpHook(method="PATCH", http_conn_id="bench_http"), token)


def loop(count: int, call: Callable[[int], None]) -> Callable[[], float]:
    """A runner: ``call(i)`` for ``count`` items, returning items per second."""

    def run() -> float:
        start = time.perf_counter()
        for i in range(count):
            call(i)
        return count / (time.perf_counter() - start)

    return run


def bench_offer_rows(endpoint: Endpoint, label: str, args: argparse.Namespace) -> OfferClients:
    """Hook vs raw Session, vs reused HttpHook, and per task (fresh hooks, tokens included)."""
    clients = OfferClients(endpoint)
    n, rounds = args.patches, args.rounds
    result = interleaved(rounds, loop(n, clients.hook_patch), loop(n, clients.raw_patch))
    ratio_row(f"{label}: hook PATCH vs raw keep-alive requests.Session", "PATCH/s", result, 0.95, rounds)
    if args.hook_vs_raw_only:
        return clients
    result = interleaved(rounds, loop(n, clients.hook_patch), loop(n, clients.http_hook_patch))
    ratio_row(f"{label}: hook PATCH vs reused HttpHook", "PATCH/s", result, None, rounds)
    tasks = max(1, n // 4)
    result = interleaved(rounds, loop(tasks, clients.fresh_hook_task), loop(tasks, clients.fresh_http_hook_task))
    ratio_row(f"{label}: per task, fresh hook vs fresh HttpHook + its token", "tasks/s", result, None, rounds)
    return clients


CEILING_CLIENT = """
import sys, time, requests, json
url, headers, seconds, verify = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
s = requests.Session(); n = 0; end = time.perf_counter() + seconds
while time.perf_counter() < end:
    body = [{"op": "replace", "path": "/description", "value": f"ceiling {n}"}]
    answer = s.patch(url, params={"offer-type": "fallback"}, json=body, headers=headers, timeout=30, verify=verify)
    answer.raise_for_status()
    n += 1
print(n)
"""


def bench_ceiling(clients: OfferClients, label: str, args: argparse.Namespace, pinning: Any) -> None:
    """The sandbox's own PATCH ceiling: 4 client processes at once (on the client cores if pinned)."""
    seconds = 3.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CEILING_CLIENT,
                clients.url,
                json.dumps(clients.headers),
                str(seconds),
                json.dumps(clients.endpoint.verify),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    if pinning:
        for proc in procs:
            with contextlib.suppress(subprocess.CalledProcessError):
                pin(proc.pid, pinning[0])
    ceiling = sum(int(p.communicate()[0].strip() or 0) for p in procs) / seconds
    hook_rate = loop(args.patches, clients.hook_patch)()
    add_row(
        f"{label}: sandbox PATCH ceiling (4 client processes)",
        f"{ceiling:.0f} PATCH/s",
        f"{hook_rate:.0f} PATCH/s (one hook)",
        f"{ceiling / hook_rate:.2f}x headroom",
        "info (context for the bulk rows)",
        None,
    )


class ProfileClients:
    """Bulk, the sequential hook and raw threads, all patching generated profiles on one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

        self.endpoint = endpoint
        self.hook = MyPreferencesHook()
        self.hook.get_profile("bench-0@example.com", "Email")  # connections opened outside the timing
        self.url = self.hook.settings.profiles_url
        self.headers = {
            **self.hook.base_headers(),
            "Authorization": self.hook.token_provider().authorization(self.hook.client.fetch_token),
            "Content-Type": "application/json",
        }
        self.raw = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=32)
        self.raw.mount("http://", adapter)
        self.raw.mount("https://", adapter)
        self.offset = 0
        #: Store writes per 1,000 items of each checkpointed bulk run.
        self.store_writes: list[float] = []

    def ids(self, count: int, population: int) -> list[int]:
        """The next ``count`` profile numbers (cycling through the seeded ones)."""
        start = self.offset
        self.offset += count
        return [(start + k) % population for k in range(count)]

    def bulk(self, count: int, population: int, in_flight: int) -> Callable[[], float]:
        """Runner: ``bulk_patch_profiles`` with ``in_flight`` concurrent requests."""

        def run() -> float:
            numbers = self.ids(count, population)
            items = ((f"bench-{n}@example.com", profile_patch(n)) for n in numbers)
            start = time.perf_counter()
            report = self.hook.bulk_patch_profiles(items, alternate_id_type="Email", max_concurrency=in_flight)
            elapsed = time.perf_counter() - start
            assert report.applied + report.unchanged == count and report.failed == 0, report
            return count / elapsed

        return run

    def bulk_checkpointed(self, count: int, population: int, in_flight: int, latency: float) -> Callable[[], float]:
        """Runner: ``bulk_patch_profiles`` with its checkpoint on, in a store whose calls take ``latency``."""
        from airflow_provider_prefs.bulk.progress import BulkProgress

        def run() -> float:
            numbers = self.ids(count, population)
            items = ((f"bench-{n}@example.com", profile_patch(n)) for n in numbers)
            store = LatentStore(latency)
            start = time.perf_counter()
            report = self.hook.bulk_patch_profiles(
                items, alternate_id_type="Email", max_concurrency=in_flight, progress=BulkProgress(store)
            )
            elapsed = time.perf_counter() - start
            assert report.applied + report.unchanged == count and report.failed == 0, report
            self.store_writes.append(1000 * store.writes / count)
            return count / elapsed

        return run

    def sequential(self, count: int, population: int) -> Callable[[], float]:
        """Runner: one hook, ``patch_profile`` in a loop."""

        def run() -> float:
            numbers = self.ids(count, population)
            start = time.perf_counter()
            for n in numbers:
                self.hook.change_profile(f"bench-{n}@example.com", "Email", patch=profile_patch(n))
            return count / (time.perf_counter() - start)

        return run

    def raw_threads(self, count: int, population: int, threads: int) -> Callable[[], float]:
        """Runner: raw ``requests`` PATCHes from ``threads`` threads over one pooled Session."""

        def one(n: int) -> None:
            answer = self.raw.patch(
                self.url,
                params={"alternateId": f"bench-{n}@example.com", "alternateIdType": "Email"},
                json=profile_patch(n),
                headers=self.headers,
                timeout=30,
                verify=self.endpoint.verify,
            )
            answer.raise_for_status()
            answer.json()

        def run() -> float:
            numbers = self.ids(count, population)
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, numbers))
            return count / (time.perf_counter() - start)

        return run


class LatentStore:
    """A task state store whose every call takes as long as a round trip through Airflow's execution API.

    In a real deployment each checkpoint write goes task process -> supervisor -> api-server ->
    metadata database; measured there: median 14.8 ms, p95 31.9 ms (``--store-ms`` sets it).
    """

    available = True

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.values: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        time.sleep(self.latency)
        return self.values.get(key, default)

    def forget_on_success(self) -> None:
        time.sleep(self.latency)
        self.values.clear()

    def set(self, key: str, value: Any) -> None:
        text = json.dumps(value)  # what the client serializes before the round trip
        time.sleep(self.latency)
        self.values[key] = json.loads(text)
        self.writes += 1

    def delete(self, *keys: str) -> None:
        time.sleep(self.latency)
        for key in keys:
            self.values.pop(key, None)


def bench_bulk_rows(endpoint: Endpoint, args: argparse.Namespace, pinned: bool) -> None:
    """Bulk at 8 in flight (checkpoints off, then on) vs raw requests with 8 threads, and vs the sequential hook."""
    clients = ProfileClients(endpoint)
    n, rounds, population = args.bulk, args.rounds, args.population
    note = "pinned" if pinned else "NOT pinned (no taskset or 1 core)"
    result = interleaved(rounds, clients.bulk(n, population, 8), clients.raw_threads(n, population, 8))
    ratio_row(f"bulk 8 in flight, checkpoints off, vs raw requests 8 threads ({note})", "PATCH/s", result, 0.9, rounds)
    latency = args.store_ms / 1000
    result = interleaved(
        rounds, clients.bulk_checkpointed(n, population, 8, latency), clients.raw_threads(n, population, 8)
    )
    ratio_row(
        f"bulk 8 in flight, checkpoints ON (store call {args.store_ms:g} ms), vs raw requests 8 threads ({note})",
        "PATCH/s",
        result,
        0.8,
        rounds,
    )
    writes = sorted(clients.store_writes)
    add_row(
        "bulk, checkpoints ON: store writes per 1,000 items",
        f"{writes[len(writes) // 2]:.0f} writes",
        f"store call {args.store_ms:g} ms",
        f"{writes[len(writes) // 2]:.0f} / 1,000",
        "info",
        None,
    )
    result = interleaved(rounds, clients.bulk(n, population, 8), clients.sequential(max(1, n // 2), population))
    ratio_row("bulk 8 in flight vs sequential hook PATCH", "PATCH/s", result, None, rounds)


def bench_wan(proxy: Endpoint, args: argparse.Namespace) -> None:
    """At simulated RTT: bulk at 16 in flight vs the sequential hook (where users gain)."""
    point_airflow_at(proxy)
    clients = ProfileClients(proxy)
    n, rounds = args.wan_items, args.rounds
    result = interleaved(rounds, clients.bulk(n, args.population, 16), clients.sequential(n, args.population))
    ratio_row(f"{args.rtt_ms:g} ms RTT: bulk 16 in flight vs sequential hook", "PATCH/s", result, 10.0, rounds)


def bench_many_hooks(args: argparse.Namespace) -> None:
    """``--hooks`` hooks created in one process, one PATCH each: late calls vs early ones, RSS growth."""
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

    count = args.hooks
    window = max(1, count // 8)
    gc.collect()
    before = rss_mib()
    costs: list[float] = []
    for i in range(count):
        start = time.perf_counter()
        hook = OfferLibraryHook()
        hook.change_offer(OFFER_ID, patch=offer_patch(i))
        hook.close()
        costs.append(time.perf_counter() - start)
    gc.collect()
    growth = rss_mib() - before
    first, last = statistics.median(costs[:window]), statistics.median(costs[-window:])
    ratio = last / first
    add_row(
        f"{count} hooks in one process: last {window} calls vs first {window} (median)",
        f"{last * 1000:.2f} ms/call",
        f"{first * 1000:.2f} ms/call",
        f"{ratio:.2f}x",
        "<= 1.2x",
        ratio <= 1.2,
    )
    add_row(
        f"{count} hooks in one process: RSS growth",
        f"+{growth:.1f} MiB",
        f"{before:.0f} MiB before",
        f"+{growth:.1f} MiB",
        "< 10 MiB",
        growth < 10,
    )


def bench_bulk_memory(args: argparse.Namespace) -> None:
    """Peak RSS growth of one bulk run over ``--bulk-memory`` items (a lazy generator of items)."""
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

    count = args.bulk_memory
    hook = MyPreferencesHook()
    hook.get_profile("bench-0@example.com", "Email")

    def items() -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for n in range(count):
            yield f"bench-{n % args.population}@example.com", profile_patch(n)

    gc.collect()
    reset_peak_rss()
    before = rss_mib()
    start = time.perf_counter()
    report = hook.bulk_patch_profiles(items(), alternate_id_type="Email", max_concurrency=8)
    elapsed = time.perf_counter() - start
    growth = peak_rss_mib() - before
    assert report.failed == 0, report
    add_row(
        f"bulk memory: {count} items, 8 in flight",
        f"peak RSS +{growth:.1f} MiB",
        f"{count / elapsed:.0f} items/s",
        f"+{growth:.1f} MiB",
        "< 20 MiB",
        growth < 20,
    )


def bench_task_tokens(sandbox: SandboxProcess, args: argparse.Namespace) -> None:
    """``--tasks`` task processes on one worker (forked, as the task runner does): token requests."""
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
    from airflow_provider_prefs.transport.auth import forget_shared_tokens

    fresh_token_cache()
    # A real task process is forked from a supervisor that never held a token: the earlier rows'
    # in-process tokens must not be inherited through the fork.
    forget_shared_tokens()
    sandbox.control("PUT", "config", {"journal": True})
    sandbox.control("DELETE", "journal")
    running: list[int] = []
    failures = 0
    in_parallel = 8  # like a LocalExecutor with parallelism 8: tasks start together and race
    for i in range(args.tasks):
        if len(running) >= in_parallel:
            failures += _reap(running.pop(0))
        pid = os.fork()
        if pid == 0:  # the task process
            code = 1
            try:
                hook = OfferLibraryHook()
                hook.change_offer(OFFER_ID, patch=offer_patch(i))
                code = 0
            finally:
                os._exit(code)
        running.append(pid)
    for pid in running:
        failures += _reap(pid)
    entries = sandbox.control("GET", "journal")["entries"]
    sandbox.control("PUT", "config", {"journal": False})
    tokens = sum(1 for entry in entries if entry["route"] == "ims.token")
    patches = sum(1 for entry in entries if entry["route"] == "offer.patch" and entry["status"] == 200)
    add_row(
        f"{args.tasks} operator tasks (processes, {in_parallel} at a time): token requests",
        f"{tokens} token request(s)",
        f"{patches} PATCHes, {failures} failed tasks",
        f"{tokens / max(1, args.tasks):.3f} per task",
        "1 per credentials and lifetime",
        tokens == 1 and failures == 0 and patches == args.tasks,
    )


def _reap(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return 0 if os.waitstatus_to_exitcode(status) == 0 else 1


IMPORT_PROBE = """
import sys, time
exec(sys.argv[1])
t = time.perf_counter()
import airflow_provider_prefs.operators, airflow_provider_prefs.sensors
print((time.perf_counter() - t) * 1000)
"""


def bench_imports(runs: int = 7) -> None:
    """Import cost of operators and sensors once the Task SDK is loaded (fresh processes)."""
    baseline = "from airflow.sdk import DAG, BaseOperator, BaseSensorOperator"
    costs = [
        float(
            subprocess.run([sys.executable, "-c", IMPORT_PROBE, baseline], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(runs)
    ]
    cost = statistics.median(costs)
    add_row(
        "import operators+sensors after the Task SDK",
        f"{cost:.1f} ms",
        f"median of {runs} fresh processes",
        f"{cost:.1f} ms",
        "< 50 ms",
        cost < 50,
    )


def bench_deferrable_waits(sandbox: SandboxProcess, args: argparse.Namespace) -> None:
    """Many deferrable waits in one event loop: all complete, loop lag stays low."""
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

    waits = min(args.waits, args.population)
    report = MyPreferencesHook().bulk_patch_profiles(
        (
            (f"bench-{n}@example.com", [{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}])
            for n in range(waits)
        ),
        alternate_id_type="Email",
        max_concurrency=8,
    )
    assert report.failed == 0, report

    async def main() -> tuple[float, list[float], list[str]]:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.05)
                lags.append((time.perf_counter() - start - 0.05) * 1000)

        async def one(n: int) -> str:
            trigger = ProfileUpdateStatusTrigger(
                alternate_id=f"bench-{n}@example.com",
                alternate_id_type="Email",
                deadline=time.time() + 120,
                poll_interval=1.0,
            )
            async for event in trigger.run():
                return str(event.payload["status"])
            return "none"

        tick = asyncio.create_task(ticker())
        start = time.perf_counter()
        statuses = await asyncio.gather(*(one(n) for n in range(waits)))
        elapsed = time.perf_counter() - start
        stop.set()
        await tick
        return elapsed, lags, statuses

    elapsed, lags, statuses = asyncio.run(main())
    ok = statuses.count("success")
    lags.sort()
    p99 = lags[max(0, int(len(lags) * 0.99) - 1)] if lags else 0.0
    add_row(
        f"{waits} deferrable waits in one event loop",
        f"{ok}/{waits} complete in {elapsed:.1f}s",
        f"pending delay {args.pending_delay:g}s",
        f"loop lag p99 {p99:.1f} ms",
        "all complete",
        ok == waits,
    )


# ----- driver -------------------------------------------------------------------------------------


def print_table() -> str:
    """The results as an aligned text table (also what RESULTS.md shows)."""
    header = ("benchmark", "ours", "baseline", "ratio / measure", "target", "verdict")
    rows = [header, *((r.benchmark, r.ours, r.baseline, r.measure, r.target, r.verdict) for r in ROWS)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    table = "\n".join(lines)
    print(table)
    return table


def start_sandbox(work: Path, name: str, seed: Path, args: argparse.Namespace, pinning: Any, **kw: Any) -> Any:
    """A sandbox process, journal off, pinned to the server core when pinning is on."""
    sandbox = SandboxProcess(work / name, seed=seed, pending_delay=args.pending_delay, **kw)
    if pinning:
        pin(sandbox.process.pid, pinning[1])
    sandbox.control("PUT", "config", {"journal": False})
    return sandbox


def bench_other_http_rows(sandbox: Any, clients: OfferClients, args: argparse.Namespace, pinning: Any) -> None:
    """Every HTTP row after the offer rows: ceiling, bulk, tokens, hooks, memory, waits, WAN."""
    bench_ceiling(clients, "HTTP", args, pinning)
    bench_bulk_rows(sandbox, args, pinned=bool(pinning))
    bench_task_tokens(sandbox, args)
    bench_many_hooks(args)
    bench_bulk_memory(args)
    bench_deferrable_waits(sandbox, args)
    proxy = WanProxy(sandbox, args.rtt_ms)
    try:
        if pinning:
            pin(proxy.process.pid, pinning[1])
        bench_wan(proxy, args)
    finally:
        proxy.stop()


def parse_args() -> argparse.Namespace:
    """Command-line options (defaults: a full run of about five minutes on a quiet 2-core machine)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per row (>= 5 for a real run)")
    parser.add_argument("--patches", type=int, default=400, help="PATCHes per contender per round")
    parser.add_argument("--bulk", type=int, default=2000, help="bulk items per contender per round")
    parser.add_argument("--bulk-memory", type=int, default=50000, help="items of the bulk memory row")
    parser.add_argument("--population", type=int, default=5000, help="generated profiles in the sandbox")
    parser.add_argument("--tasks", type=int, default=200, help="operator task processes for the token row")
    parser.add_argument("--hooks", type=int, default=800, help="hooks created in one process")
    parser.add_argument("--waits", type=int, default=1000, help="deferrable waits in one event loop")
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="round-trip time of the simulated WAN link")
    parser.add_argument("--wan-items", type=int, default=160, help="PATCHes per contender per round over that link")
    parser.add_argument("--pending-delay", type=float, default=3.0)
    parser.add_argument("--store-ms", type=float, default=15.0, help="latency of one task state store call")
    parser.add_argument(
        "--hook-vs-raw-only", action="store_true", help="only the HTTP and HTTPS hook vs raw requests.Session rows"
    )
    parser.add_argument("--bulk-only", action="store_true", help="only the bulk rows (checkpoints off and on)")
    return parser.parse_args()


def main() -> int:
    """Run every row, print the table; exit code 1 when a target is missed."""
    from airflow_provider_prefs.sandbox.tls import self_signed_cert

    args = parse_args()
    wall = time.perf_counter()
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "airflow-bench"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    fresh_token_cache()
    pinning = cores()
    if pinning:
        os.sched_setaffinity(0, pinning[0])
    work = Path(tempfile.mkdtemp(prefix="prefs-bench-"))
    seed = work / "seed.json"
    make_seed(seed, args.population)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    sandbox = start_sandbox(work, "http", seed, args, pinning)
    try:
        point_airflow_at(sandbox)
        if args.bulk_only:
            print("bulk rows", flush=True)
            bench_bulk_rows(sandbox, args, pinned=bool(pinning))
            print_table()
            return 0 if all(row.verdict != "FAIL" for row in ROWS) else 1
        print("HTTP rows", flush=True)
        clients = bench_offer_rows(sandbox, "HTTP", args)
        if not args.hook_vs_raw_only:
            bench_other_http_rows(sandbox, clients, args, pinning)
    finally:
        sandbox.stop()
    tls_sandbox = start_sandbox(work, "https", seed, args, pinning, tls=self_signed_cert(work / "tls"))
    try:
        point_airflow_at(tls_sandbox)
        print("HTTPS rows", flush=True)
        bench_offer_rows(tls_sandbox, "HTTPS", args)
    finally:
        tls_sandbox.stop()
    if not args.hook_vs_raw_only:
        bench_imports()

    print(
        f"\nairflow-provider-prefs benchmarks, {started}, {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, client/sandbox pinned: "
        f"{'yes, cores ' + str(sorted(pinning[0])) + ' / ' + str(sorted(pinning[1])) if pinning else 'no'}, "
        f"wall time {time.perf_counter() - wall:.0f}s"
    )
    print("command: python benchmarks/bench.py " + " ".join(sys.argv[1:]) + "\n")
    print_table()
    return 0 if all(row.verdict != "FAIL" for row in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
