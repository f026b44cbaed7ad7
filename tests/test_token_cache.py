"""The worker-wide token cache: separate task processes share one token per credentials and lifetime."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_TRANSPORT, journal

from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.sandbox.connections import ADOBE_CLIENT_SECRET, MP_OAUTH_CLIENT_SECRET, airflow_conn_env
from airflow_provider_prefs.transport.auth import ClientCredentials, TokenProvider, parse_token_answer
from airflow_provider_prefs.transport.token_cache import SharedTokenCache, entry_name

#: What one task process does: build a fresh hook, make one call, exit.
TASK_SCRIPT = """
import sys
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

conn_id = sys.argv[1]
if conn_id.startswith("adobe"):
    OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
else:
    MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")
"""


def run_task_process(sandbox: Any, cache_dir: Path, conn_id: str, **extras: Any) -> None:
    """Run TASK_SCRIPT in a new Python process, as a task runner would."""
    env = {**os.environ, **airflow_conn_env(sandbox.url, **FAST_TRANSPORT, **extras)}
    env["AIRFLOW__PREFS__TOKEN_CACHE_DIR"] = str(cache_dir)
    # Generous: an Airflow import in a new process takes seconds on a loaded machine.
    subprocess.run([sys.executable, "-c", TASK_SCRIPT, conn_id], env=env, check=True, timeout=180)


@pytest.mark.parametrize(
    ("conn_id", "token_route"), [("adobe_offer_library_default", "ims.token"), ("mypreferences_oauth", "mp.token")]
)
def test_two_task_processes_share_one_token(
    sandbox: Any, private_token_cache: Path, conn_id: str, token_route: str
) -> None:
    run_task_process(sandbox, private_token_cache, conn_id)
    run_task_process(sandbox, private_token_cache, conn_id)
    assert len(journal(sandbox, token_route)) == 1
    assert all(entry["status"] == 200 for entry in journal(sandbox))
    assert len(journal(sandbox)) == 3  # one token, two calls


def test_turned_off_per_connection_each_process_fetches(sandbox: Any, private_token_cache: Path) -> None:
    for _ in range(2):
        run_task_process(sandbox, private_token_cache, "adobe_offer_library_default", share_across_tasks=False)
    assert len(journal(sandbox, "ims.token")) == 2
    assert not private_token_cache.exists() or not any(private_token_cache.iterdir())


def test_cache_file_is_private_and_holds_no_secret_in_clear(connections: Any, private_token_cache: Path) -> None:
    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")
    token = hook.client.auth._token.value.get_secret_value()  # type: ignore[union-attr]
    assert stat.S_IMODE(private_token_cache.stat().st_mode) == 0o700
    entries = [p for p in private_token_cache.iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    blob = entries[0].read_bytes()
    for secret in (token, ADOBE_CLIENT_SECRET, MP_OAUTH_CLIENT_SECRET, "demo-client-id"):
        assert secret.encode() not in blob
        assert secret not in entries[0].name


def test_expired_shared_token_is_not_used(connections: Any) -> None:
    connections.state.set_config(token_lifetime=1)
    OfferLibraryHook().get_offer("fallbackOffer1234")
    time.sleep(1.1)
    OfferLibraryHook().get_offer("fallbackOffer1234")  # a new hook: only the shared cache could help
    assert [(e["route"], e["status"]) for e in journal(connections)] == [
        ("ims.token", 200),
        ("offer.get", 200),
        ("ims.token", 200),
        ("offer.get", 200),
    ]


def test_fresh_shared_token_is_reused_by_a_new_hook(connections: Any) -> None:
    OfferLibraryHook().get_offer("fallbackOffer1234")
    OfferLibraryHook().get_offer("fallbackOffer1234")
    assert [e["route"] for e in journal(connections)] == ["ims.token", "offer.get", "offer.get"]


def test_401_invalidates_the_shared_entry(connections: Any) -> None:
    OfferLibraryHook().get_offer("fallbackOffer1234")
    connections.state.reset()  # the server forgets every token it issued
    OfferLibraryHook().get_offer("fallbackOffer1234")  # cached token -> 401 -> new token, shared
    OfferLibraryHook().get_offer("fallbackOffer1234")  # finds the new token
    assert [(e["route"], e["status"]) for e in journal(connections)] == [
        ("offer.get", 401),
        ("ims.token", 200),
        ("offer.get", 200),
        ("offer.get", 200),
    ]


def credentials(secret: str = "s3cret") -> ClientCredentials:
    return ClientCredentials(token_url="http://127.0.0.1:1/token", client_id="cid", client_secret=secret, scope="a")


def test_a_rotated_secret_is_another_entry_and_cannot_read_the_old_one(tmp_path: Path) -> None:
    cache = SharedTokenCache(tmp_path / "tokens")
    cache.store(credentials(), parse_token_answer({"access_token": "tok-1", "expires_in": 3600}))
    assert cache.load(credentials()) is not None
    assert entry_name(credentials("other")) != entry_name(credentials())
    # Even the same file read with another secret decrypts to nothing.
    (tmp_path / "tokens" / entry_name(credentials("other"))).write_bytes(
        (tmp_path / "tokens" / entry_name(credentials())).read_bytes()
    )
    assert cache.load(credentials("other")) is None


def test_a_401_keeps_a_token_another_process_already_replaced(tmp_path: Path) -> None:
    cache = SharedTokenCache(tmp_path / "tokens")
    provider = TokenProvider(credentials(), shared=cache)
    answers = iter([{"access_token": "old", "expires_in": 3600}])
    provider.authorization(lambda _: next(answers))
    cache.store(credentials(), parse_token_answer({"access_token": "new", "expires_in": 3600}))
    provider.invalidate()  # "old" was rejected; "new" must survive
    loaded = cache.load(credentials())
    assert loaded is not None and loaded.value.get_secret_value() == "new"


def test_a_directory_others_can_read_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    SharedTokenCache(directory).store(credentials(), parse_token_answer({"access_token": "t", "expires_in": 60}))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_corrupt_entry_means_a_fetch_not_a_failure(tmp_path: Path) -> None:
    cache = SharedTokenCache(tmp_path / "tokens")
    cache.store(credentials(), parse_token_answer({"access_token": "t", "expires_in": 60}))
    (tmp_path / "tokens" / entry_name(credentials())).write_bytes(b"garbage")
    provider = TokenProvider(credentials(), shared=cache)
    assert provider.authorization(lambda _: {"access_token": "fetched", "expires_in": 60}) == "Bearer fetched"
    repaired = cache.load(credentials())
    assert repaired is not None and repaired.value.get_secret_value() == "fetched"


def test_the_triggerer_path_reads_and_fills_the_same_cache(tmp_path: Path) -> None:
    import asyncio

    cache = SharedTokenCache(tmp_path / "tokens")
    fetched: list[str] = []

    async def fetch(_: ClientCredentials) -> dict[str, Any]:
        fetched.append("token")
        return {"access_token": "from-async", "expires_in": 3600}

    first = TokenProvider(credentials(), shared=cache)
    assert asyncio.run(first.aauthorization(fetch)) == "Bearer from-async"
    # A worker task (sync) and another trigger (async) both find it without a request.
    assert TokenProvider(credentials(), shared=cache).authorization(lambda _: {}) == "Bearer from-async"
    assert asyncio.run(TokenProvider(credentials(), shared=cache).aauthorization(fetch)) == "Bearer from-async"
    assert fetched == ["token"]


def test_tasks_starting_together_make_one_token_request(tmp_path: Path) -> None:
    import threading

    cache = SharedTokenCache(tmp_path / "tokens")
    fetched: list[int] = []

    def slow_fetch(_: ClientCredentials) -> dict[str, Any]:
        fetched.append(1)
        time.sleep(0.3)  # long enough for every other "task" to arrive while this one fetches
        return {"access_token": "only-one", "expires_in": 3600}

    # Separate providers = separate lock file descriptions, exactly like separate task processes.
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(TokenProvider(credentials(), shared=cache).authorization(slow_fetch))
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == ["Bearer only-one"] * 6
    assert len(fetched) == 1
