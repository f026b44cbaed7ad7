"""`make bench`: every speed claim of the provider, measured side by side in one run.

All traffic goes to a local sandbox started here as its own process (its own core), so client and
server do not share a GIL. Prints one table of ratios and the sandbox's own ceiling.

    python benchmarks/bench.py [--patches 3000] [--bulk 10000] [--waits 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_prefs.sandbox.process import SandboxProcess

ROOT = Path(__file__).resolve().parents[1]

RESULTS: list[tuple[str, str, str, str, str]] = []  # (benchmark, ours, baseline, ratio, target)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def make_seed(path: Path, profiles: int) -> None:
    """The default seed plus ``profiles`` generated profiles for client DEMO (bench-<n>@example.com)."""
    from airflow_provider_prefs.sandbox.seed import add_seed_profile, default_seed_data, iter_seed_profiles

    seed = default_seed_data()
    template = dict(next(iter_seed_profiles(seed, "DEMO")))
    for n in range(profiles):
        add_seed_profile(seed, "DEMO", f"bench-{n}@example.com", "Email", {**template, "ProfileId": 900000 + n})
    path.write_text(json.dumps(seed))


def timed_rate(count: int, run: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for i in range(count):
        run(i)
    return count / (time.perf_counter() - start)


def best_of_rounds(rounds: int, runners: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Interleave the contenders round by round (so drift hits all alike); median per contender."""
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            rates[name].append(runner())
    return {name: statistics.median(values) for name, values in rates.items()}


class Endpoint(Protocol):
    """Where the clients send their requests: the sandbox itself or a latency proxy in front of it."""

    url: str
    verify: bool | str


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
        self.process.terminate()
        self.process.wait(10)


def point_airflow_at(endpoint: Endpoint) -> None:
    from airflow_provider_prefs.sandbox.connections import airflow_conn_env

    extras = {"ca_bundle": endpoint.verify} if isinstance(endpoint.verify, str) else {}
    os.environ.update(airflow_conn_env(endpoint.url, **extras))
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": endpoint.url + "/data/core/dps"})


def bench_patch_throughput(
    endpoint: Endpoint, patches: int, rounds: int, label: str, measure_ceiling: bool = True
) -> None:
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")  # token fetched once, outside the timing
    token = hook.client.auth.authorization(hook.client.fetch_token)  # type: ignore[union-attr]
    headers = {**hook.base_headers(), "Authorization": token, "Content-Type": "application/json"}
    url = hook.offer_url("fallbackOffer1234")

    def body(i: int) -> list[dict[str, Any]]:
        return [{"op": "replace", "path": "/description", "value": f"bench {i}"}]

    raw = requests.Session()

    def raw_patch(i: int) -> None:
        answer = raw.patch(
            url, params={"offer-type": "fallback"}, json=body(i), headers=headers, timeout=30, verify=endpoint.verify
        )
        answer.raise_for_status()
        answer.json()

    def hook_patch(i: int) -> None:
        hook.patch_offer("fallbackOffer1234", body(i))

    http_hook = HttpHook(method="PATCH", http_conn_id="bench_http")
    http_hook_path = url.split("/data/core/dps", 1)[1]

    def http_hook_patch(i: int, hook: HttpHook | None = None) -> None:
        (hook or http_hook).run(
            http_hook_path + "?offer-type=fallback",
            json=body(i),
            headers=headers,
            extra_options={"verify": endpoint.verify},
        ).json()

    # What HttpOperator does for every task (and every mapped item): a new hook, so a new
    # connection pool. One reused HttpHook keeps its pool (6.x mounts the same adapter on the
    # Session it builds per run), so that is measured too.
    def fresh_http_hook_patch(i: int) -> None:
        http_hook_patch(i, HttpHook(method="PATCH", http_conn_id="bench_http"))

    per_round = max(1, patches // rounds)
    rates = best_of_rounds(
        rounds,
        {
            "raw": lambda: timed_rate(per_round, raw_patch),
            "hook": lambda: timed_rate(per_round, hook_patch),
            "http_hook": lambda: timed_rate(per_round // 4 or 1, http_hook_patch),
            "fresh_http_hook": lambda: timed_rate(per_round // 4 or 1, fresh_http_hook_patch),
        },
    )
    RESULTS.append(
        (
            f"{label} PATCH/s: hook vs raw requests.Session",
            f"{rates['hook']:.0f}/s",
            f"{rates['raw']:.0f}/s",
            f"{rates['hook'] / rates['raw']:.2f}x",
            ">= 0.9x",
        )
    )
    for key, baseline in (
        ("http_hook", "one HttpHook, .run per call"),
        ("fresh_http_hook", "new HttpHook per call"),
    ):
        RESULTS.append(
            (
                f"{label} PATCH/s: hook vs {baseline}",
                f"{rates['hook']:.0f}/s",
                f"{rates[key]:.0f}/s",
                f"{rates['hook'] / rates[key]:.2f}x",
                ">= 2x",
            )
        )

    if not measure_ceiling:
        return
    # The sandbox's own ceiling: several client processes hammering it at once.
    ceiling = sandbox_ceiling(url, headers, 3.0, endpoint.verify)
    RESULTS.append(
        (
            f"{label} sandbox ceiling (4 client processes)",
            f"{ceiling:.0f}/s",
            f"{rates['hook']:.0f}/s (hook)",
            f"{ceiling / rates['hook']:.2f}x headroom",
            "> 1x",
        )
    )


CEILING_CLIENT = """
import sys, time, requests, json
url, headers, seconds, verify = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
s = requests.Session(); n = 0; end = time.perf_counter() + seconds
while time.perf_counter() < end:
    s.get(url, params={"offer-type": "fallback"}, headers=headers, timeout=30, verify=verify).raise_for_status(); n += 1
print(n)
"""


def sandbox_ceiling(url: str, headers: dict[str, str], seconds: float, verify: bool | str) -> float:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CEILING_CLIENT, url, json.dumps(headers), str(seconds), json.dumps(verify)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    return sum(int(p.communicate()[0].strip() or 0) for p in procs) / seconds


def bench_bulk(sandbox: SandboxProcess, count: int) -> None:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

    hook = MyPreferencesHook()
    hook.get_profile("bench-0@example.com", "Email")

    def items() -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for n in range(count):
            yield f"bench-{n}@example.com", [{"op": "replace", "path": "/CustomerType", "value": f"Bulk{n % 7}"}]

    import gc

    gc.collect()
    reset_peak_rss()
    before = rss_mib()
    start = time.perf_counter()
    report = hook.bulk_patch_profiles(items(), alternate_id_type="Email", max_concurrency=8)
    elapsed = time.perf_counter() - start
    growth = peak_rss_mib() - before
    assert report.applied == count and report.failed == 0, report
    RESULTS.append(
        (
            f"bulk: {count} profile patches (8 in flight)",
            f"{count / elapsed:.0f} items/s",
            f"{elapsed:.1f}s total",
            f"peak RSS +{growth:.1f} MiB",
            "< 100 MiB growth",
        )
    )


IMPORT_PROBE = """
import sys, time
baseline = sys.argv[1]
exec(baseline)
t = time.perf_counter()
import airflow_provider_prefs.operators, airflow_provider_prefs.sensors
print((time.perf_counter() - t) * 1000)
"""


def bench_imports(runs: int = 7) -> None:
    for label, baseline in (
        ("import airflow.sdk", "import airflow.sdk"),
        (
            "from airflow.sdk import DAG, BaseOperator, BaseSensorOperator",
            "from airflow.sdk import DAG, BaseOperator, BaseSensorOperator",
        ),
    ):
        costs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", IMPORT_PROBE, baseline], capture_output=True, text=True, check=True
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            for _ in range(runs)
        ]
        RESULTS.append(
            (
                f"import operators+sensors after `{label}`",
                f"{statistics.median(costs):.1f} ms",
                "fresh process, median of 7",
                "-",
                "< 50 ms",
            )
        )


def bench_deferrable_waits(sandbox: SandboxProcess, waits: int, pending_delay: float) -> None:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

    hook = MyPreferencesHook()
    report = hook.bulk_patch_profiles(
        (
            (f"bench-{n}@example.com", [{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}])
            for n in range(waits)
        ),
        alternate_id_type="Email",
        max_concurrency=8,
    )
    assert report.applied == waits, report

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

    reset_peak_rss()
    before = rss_mib()
    elapsed, lags, statuses = asyncio.run(main())
    growth = peak_rss_mib() - before
    ok = statuses.count("success")
    lags.sort()
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else 0.0
    RESULTS.append(
        (
            f"{waits} deferrable waits in one event loop",
            f"{ok}/{waits} complete in {elapsed:.1f}s",
            f"pending delay {pending_delay:.0f}s",
            f"RSS +{growth:.1f} MiB",
            f"loop lag p99 {p99:.1f} ms, max {lags[-1] if lags else 0:.1f} ms",
        )
    )


def print_table() -> str:
    header = ("benchmark", "ours", "baseline", "ratio / measure", "target")
    widths = [max(len(row[i]) for row in [header, *RESULTS]) for i in range(5)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in [header, *RESULTS]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    table = "\n".join(lines)
    print(table)
    return table


def main() -> int:
    from airflow_provider_prefs.sandbox.tls import self_signed_cert

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patches", type=int, default=3000)
    parser.add_argument("--bulk", type=int, default=10000)
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="round-trip time of the simulated WAN link")
    parser.add_argument("--wan-patches", type=int, default=300, help="PATCHes per contender over that link")
    parser.add_argument("--pending-delay", type=float, default=3.0)
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "airflow-bench"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    work = Path(tempfile.mkdtemp(prefix="prefs-bench-seed-"))
    seed = work / "seed.json"
    make_seed(seed, max(args.bulk, args.waits))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sandbox = SandboxProcess(Path(tempfile.mkdtemp(prefix="prefs-bench-")), seed=seed, pending_delay=args.pending_delay)
    try:
        point_airflow_at(sandbox)
        sandbox.control("PUT", "config", {"journal": False})
        bench_patch_throughput(sandbox, args.patches, args.rounds, "HTTP")
        bench_bulk(sandbox, args.bulk)
        bench_imports()
        bench_deferrable_waits(sandbox, args.waits, args.pending_delay)
    finally:
        sandbox.stop()
    tls_sandbox = SandboxProcess(
        work / "tls-sandbox", seed=seed, pending_delay=args.pending_delay, tls=self_signed_cert(work / "tls")
    )
    try:
        point_airflow_at(tls_sandbox)
        tls_sandbox.control("PUT", "config", {"journal": False})
        bench_patch_throughput(tls_sandbox, args.patches, args.rounds, "HTTPS")
        proxy = WanProxy(tls_sandbox, args.rtt_ms)
        try:
            point_airflow_at(proxy)
            label = f"HTTPS, {args.rtt_ms:g} ms RTT"
            bench_patch_throughput(proxy, args.wan_patches, args.rounds, label, measure_ceiling=False)
        finally:
            proxy.stop()
    finally:
        tls_sandbox.stop()
    print(
        f"\nairflow-provider-prefs benchmarks, {started}, {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"command: python benchmarks/bench.py --patches {args.patches} --bulk {args.bulk} --waits {args.waits} "
        f"--rounds {args.rounds} --rtt-ms {args.rtt_ms:g} --wan-patches {args.wan_patches}\n"
    )
    print_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
