"""The sandbox itself, driven over raw HTTP (no provider code): it must behave like api-notes.md."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_prefs.sandbox import SandboxServer
from airflow_provider_prefs.sandbox.connections import (
    ADOBE_CLIENT_ID,
    ADOBE_CLIENT_SECRET,
    ADOBE_IMS_ORG,
    MP_OAUTH_CLIENT_ID,
    MP_OAUTH_CLIENT_SECRET,
    MP_STATIC_TOKEN,
)
from airflow_provider_prefs.sandbox.process import SandboxProcess
from airflow_provider_prefs.sandbox.seed import default_seed_data
from airflow_provider_prefs.sandbox.tls import self_signed_cert

OFFER = "/data/core/dps/offers/fallbackOffer1234"
FALLBACK = {"offer-type": "fallback"}
ADA = {"alternateId": "Ada@Example.com", "alternateIdType": "Email"}


def ims_token(url: str) -> str:
    answer = requests.post(
        f"{url}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": ADOBE_CLIENT_ID,
            "client_secret": ADOBE_CLIENT_SECRET,
            "scope": "openid",
        },
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "bearer"
    return str(answer.json()["access_token"])


def adobe_headers(url: str, **overrides: Any) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {ims_token(url)}",
        "x-api-key": ADOBE_CLIENT_ID,
        "x-gw-ims-org-id": ADOBE_IMS_ORG,
        "x-sandbox-name": "dev",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


MP_HEADERS = {"Authorization": f"Bearer {MP_STATIC_TOKEN}"}


def test_ims_rejects_bad_credentials_and_grant(sandbox: Any) -> None:
    bad = requests.post(
        f"{sandbox.url}/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": ADOBE_CLIENT_ID, "client_secret": "nope"},
        timeout=5,
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    grant = requests.post(f"{sandbox.url}/ims/token/v3", data={"grant_type": "password"}, timeout=5)
    assert grant.status_code == 400


def test_tokens_expire(sandbox: Any) -> None:
    sandbox.state.set_config(token_lifetime=1)
    headers = adobe_headers(sandbox.url)
    assert requests.get(sandbox.url + OFFER, params=FALLBACK, headers=headers, timeout=5).status_code == 200
    time.sleep(1.1)
    expired = requests.get(sandbox.url + OFFER, params=FALLBACK, headers=headers, timeout=5)
    assert expired.status_code == 401 and set(expired.json()) == {"error_code", "message"}


@pytest.mark.parametrize(
    ("override", "status"),
    [
        ({"Authorization": None}, 401),
        ({"x-api-key": None}, 403),
        ({"x-api-key": "other"}, 403),
        ({"x-gw-ims-org-id": None}, 403),
        ({"x-sandbox-name": None}, 400),
        ({"x-sandbox-name": "qa"}, 403),
    ],
)
def test_every_adobe_header_is_checked(sandbox: Any, override: dict[str, Any], status: int) -> None:
    answer = requests.get(
        sandbox.url + OFFER, params=FALLBACK, headers=adobe_headers(sandbox.url, **override), timeout=5
    )
    assert answer.status_code == status
    body = answer.json()
    assert ("error_code" in body) if status in (400, 401) else (body["status"] == 403 and "detail" in body)


def test_offer_type_is_required(sandbox: Any) -> None:
    assert requests.get(sandbox.url + OFFER, headers=adobe_headers(sandbox.url), timeout=5).status_code == 400


def test_offer_patch_semantics(sandbox: Any) -> None:
    headers = adobe_headers(sandbox.url)
    before = requests.get(sandbox.url + OFFER, params=FALLBACK, headers=headers, timeout=5).json()
    ops = [
        {"op": "test", "path": "/status", "value": "approved"},
        {"op": "replace", "path": "/name", "value": "N"},
        {"op": "copy", "from": "/name", "path": "/description"},
        {"op": "add", "path": "/labels/-", "value": "x"},
        {"op": "remove", "path": "/labels/0"},
    ]
    answer = requests.patch(sandbox.url + OFFER, params=FALLBACK, headers=headers, json=ops, timeout=5)
    assert answer.status_code == 200
    meta = answer.json()
    assert set(meta) == {
        "id",
        "datasetId",
        "sandboxId",
        "etag",
        "createdDate",
        "lastModifiedDate",
        "createdBy",
        "lastModifiedBy",
        "createdByClientId",
        "lastModifiedByClientId",
    }
    assert meta["etag"] == before["etag"] + 1 and meta["lastModifiedDate"].endswith("Z")
    after = sandbox.state.offer("dev", "fallbackOffer1234")
    assert (after["name"], after["description"], after["labels"]) == ("N", "N", ["x"])


@pytest.mark.parametrize(
    ("ops", "fragment"),
    [
        ([{"op": "move", "from": "/name", "path": "/description"}], "move"),
        ([{"op": "replace", "path": "/etag", "value": 9}], "read-only"),
        ([{"op": "test", "path": "/name", "value": "wrong"}], "test failed"),
        ([{"op": "remove", "path": "/nope"}], "cannot be applied"),
        ({"op": "replace"}, "JSON array"),
    ],
)
def test_offer_patch_rejections_apply_nothing(sandbox: Any, ops: Any, fragment: str) -> None:
    answer = requests.patch(
        sandbox.url + OFFER, params=FALLBACK, headers=adobe_headers(sandbox.url), json=ops, timeout=5
    )
    assert answer.status_code == 400 and fragment in answer.json()["message"]
    assert sandbox.state.offer("dev", "fallbackOffer1234")["etag"] == 1


def test_offer_404_create_list_delete(sandbox: Any) -> None:
    headers = adobe_headers(sandbox.url)
    missing = requests.get(f"{sandbox.url}/data/core/dps/offers/nope", params=FALLBACK, headers=headers, timeout=5)
    assert missing.status_code == 404 and "error_code" in missing.json()
    created = requests.post(
        f"{sandbox.url}/data/core/dps/offers", params=FALLBACK, headers=headers, json={"name": "New one"}, timeout=5
    ).json()
    page = requests.get(
        f"{sandbox.url}/data/core/dps/offers",
        headers=headers,
        params={**FALLBACK, "property": "name==New one"},
        timeout=5,
    ).json()
    assert page["total"] == 1 and page["results"][0]["id"] == created["id"]
    gone = requests.delete(
        f"{sandbox.url}/data/core/dps/offers/{created['id']}", params=FALLBACK, headers=headers, timeout=5
    )
    assert gone.status_code == 200


def test_profiles_case_insensitive_pending_then_complete(sandbox: Any) -> None:
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    shouted = {"alternateId": "ADA@EXAMPLE.COM", "alternateIdType": "eMaIl"}
    assert requests.get(url, params=shouted, headers=MP_HEADERS, timeout=5).json()["ProfileId"] == 1001
    answer = requests.patch(
        url,
        params=ADA,
        headers=MP_HEADERS,
        timeout=5,
        json=[{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}],
    )
    assert answer.status_code == 200 and answer.json()["UpdateStatus"] == "Pending Update"
    assert answer.json()["Edited"]["By"] == "DEMO"
    time.sleep(0.35)
    assert requests.get(url, params=ADA, headers=MP_HEADERS, timeout=5).json()["UpdateStatus"] == "Complete"


@pytest.mark.parametrize(
    ("ops", "status", "fragment"),
    [
        ([{"op": "move", "from": "/DefaultLocale", "path": "/CustomerType"}], 400, "move"),
        ([{"op": "copy", "from": "/DefaultLocale", "path": "/CustomerType"}], 400, "copy"),
        ([{"op": "replace", "path": "/ProfileId", "value": 1}], 400, "read-only"),
        ([{"op": "replace", "path": "/Edited/By", "value": "me"}], 400, "read-only"),
        ([{"op": "remove", "path": "/CustomFields/0"}, {"op": "remove", "path": "/CustomFields/2"}], 400, "descending"),
        ([{"op": "test", "path": "/CustomerType", "value": "Nope"}], 409, "test failed"),
    ],
)
def test_profile_patch_rejections(sandbox: Any, ops: Any, status: int, fragment: str) -> None:
    answer = requests.patch(f"{sandbox.url}/api/v4/DEMO/profiles", params=ADA, headers=MP_HEADERS, json=ops, timeout=5)
    assert answer.status_code == status and fragment in answer.json()["Message"]
    assert sandbox.state.journal()[-1]["applied"] is False


def test_profile_auth_and_lookup_errors(sandbox: Any) -> None:
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    assert requests.get(url, params=ADA, timeout=5).status_code == 401
    other = requests.get(f"{sandbox.url}/api/v4/OTHER/profiles", params=ADA, headers=MP_HEADERS, timeout=5)
    assert other.status_code == 403
    unknown = requests.get(f"{sandbox.url}/api/v4/NOPE/profiles", params=ADA, headers=MP_HEADERS, timeout=5)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/plain")
    assert requests.get(url, params={"alternateId": "x"}, headers=MP_HEADERS, timeout=5).status_code == 400
    oauth = requests.post(
        f"{sandbox.url}/mypreferences/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": MP_OAUTH_CLIENT_ID,
            "client_secret": MP_OAUTH_CLIENT_SECRET,
        },
        timeout=5,
    ).json()
    headers = {"Authorization": f"Bearer {oauth['access_token']}"}
    assert requests.get(url, params=ADA, headers=headers, timeout=5).status_code == 200


def test_fault_kinds_before_and_after_processing(sandbox: Any) -> None:
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    patch = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": "x", "Value": "y"}}]
    for kind, status in (("429", 429), ("503_before", 503), ("503_after", 503)):
        sandbox.state.set_faults([{"route": "profile.patch", "kind": kind, "retry_after": 2}])
        answer = requests.patch(url, params=ADA, headers=MP_HEADERS, json=patch, timeout=5)
        assert answer.status_code == status
        if kind == "429":
            assert answer.headers["Retry-After"] == "2"
    sandbox.state.set_faults([{"route": "profile.patch", "kind": "drop_after"}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.patch(url, params=ADA, headers=MP_HEADERS, json=patch, timeout=5)
    entries = [e for e in sandbox.state.journal() if e["route"] == "profile.patch"]
    assert [(e["fault"], e["applied"], e["status"]) for e in entries] == [
        ("429", False, 429),
        ("503_before", False, 503),
        ("503_after", True, 503),
        ("drop_after", True, None),
    ]
    assert len(sandbox.state.profile("DEMO", "Ada@Example.com", "Email")["CustomFields"]) == 4 + 2


def test_slow_fault_and_count(sandbox: Any) -> None:
    sandbox.state.set_faults([{"route": "*", "kind": "slow", "delay": 0.3, "count": 1}])
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    start = time.monotonic()
    requests.get(url, params=ADA, headers=MP_HEADERS, timeout=5)
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    requests.get(url, params=ADA, headers=MP_HEADERS, timeout=5)
    assert time.monotonic() - start < 0.3


def test_probability_with_seed_is_reproducible(sandbox: Any) -> None:
    def pattern() -> list[int]:
        sandbox.state.set_faults([{"route": "profile.get", "kind": "503_before", "probability": 0.5, "seed": 3}])
        return [
            requests.get(f"{sandbox.url}/api/v4/DEMO/profiles", params=ADA, headers=MP_HEADERS, timeout=5).status_code
            for _ in range(20)
        ]

    first = pattern()
    assert first == pattern() and 3 <= first.count(503) <= 17


def test_journal_never_holds_secrets(sandbox: Any) -> None:
    headers = adobe_headers(sandbox.url)
    requests.get(sandbox.url + OFFER, params=FALLBACK, headers=headers, timeout=5)
    requests.post(
        f"{sandbox.url}/mypreferences/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": MP_OAUTH_CLIENT_ID,
            "client_secret": MP_OAUTH_CLIENT_SECRET,
        },
        timeout=5,
    )
    requests.get(f"{sandbox.url}/api/v4/DEMO/profiles", params=ADA, headers=MP_HEADERS, timeout=5)
    dump = requests.get(f"{sandbox.url}/_sandbox/journal", timeout=5).text
    secrets = [ADOBE_CLIENT_SECRET, MP_OAUTH_CLIENT_SECRET, MP_STATIC_TOKEN, *sandbox.state.issued_tokens()]
    assert len(json.loads(dump)["entries"]) == 4 and len(secrets) == 5
    assert [s for s in secrets if s in dump] == []


def test_control_api_reset_config_faults(sandbox: Any) -> None:
    requests.patch(
        f"{sandbox.url}/api/v4/DEMO/profiles",
        params=ADA,
        headers=MP_HEADERS,
        timeout=5,
        json=[{"op": "replace", "path": "/CustomerType", "value": "X"}],
    )
    assert (
        requests.put(f"{sandbox.url}/_sandbox/config", json={"pending_delay": 5}, timeout=5).json()["pending_delay"]
        == 5
    )
    rules = requests.put(
        f"{sandbox.url}/_sandbox/faults", json={"rules": [{"route": "*", "kind": "429"}]}, timeout=5
    ).json()["rules"]
    assert rules[0]["kind"] == "429"
    assert (
        requests.put(
            f"{sandbox.url}/_sandbox/faults", json={"rules": [{"kind": "boom", "route": "*"}]}, timeout=5
        ).status_code
        == 400
    )
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    profile = requests.get(f"{sandbox.url}/_sandbox/profiles/DEMO", params=ADA, timeout=5).json()
    assert profile["CustomerType"] == "Retail"
    assert requests.get(f"{sandbox.url}/_sandbox/journal", timeout=5).json()["entries"] == []


def test_custom_seed_file(tmp_path: Path) -> None:
    seed = default_seed_data()
    seed["adobe"]["offers"]["dev"] = [{"id": "mine", "name": "Mine", "representations": [], "labels": []}]
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with SandboxServer(seed=path) as server:
        assert requests.get(f"{server.url}/_sandbox/offers/dev/mine", timeout=5).json()["etag"] == 1


def test_cli_starts_and_stops_cleanly(tmp_path: Path) -> None:
    with SandboxProcess(tmp_path) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert sandbox.control("GET", "health") == {"ok": True}
    assert sandbox.process.returncode == 0  # SIGTERM is a clean stop, not a kill
    assert f"sandbox listening on {sandbox.url}" in sandbox.log_path.read_text()


def test_cli_serves_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    with SandboxProcess(tmp_path, tls=self_signed_cert(tmp_path / "tls")) as sandbox:
        assert sandbox.url.startswith("https://127.0.0.1:") and sandbox.verify == str(tmp_path / "tls" / "cert.pem")
        assert requests.get(f"{sandbox.url}/_sandbox/health", timeout=5, verify=sandbox.verify).json() == {"ok": True}
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{sandbox.url}/_sandbox/health", timeout=5, verify=True)
    assert sandbox.process.returncode == 0


def test_cli_that_cannot_start_says_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"sandbox did not start; see .*sandbox\.log"):
        SandboxProcess(tmp_path, seed=tmp_path / "missing.json")
    assert "missing.json" in (tmp_path / "sandbox.log").read_text()
