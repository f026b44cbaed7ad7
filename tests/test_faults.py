"""The fault suite: a few hundred patches through injected faults, each applied exactly once.

Faults hit more than 30% of patch calls (429 with and without Retry-After, 503 before processing,
503 and dropped connections after processing, answers slower than the client timeout), and the
re-reads that resolve uncertain outcomes are faulted too. Every patch appends a unique marker, the
least forgiving kind of patch (re-applying it duplicates), so the final documents and the sandbox
journal show directly whether anything was lost or applied twice.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest
from helpers import set_connection

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

PATCH_FAULTS = [
    {"kind": "429", "probability": 0.08},
    {"kind": "429", "probability": 0.5, "retry_after": 1, "count": 2},
    {"kind": "503_before", "probability": 0.08},
    {"kind": "503_after", "probability": 0.08},
    {"kind": "drop_after", "probability": 0.06},
    {"kind": "slow", "probability": 0.04, "delay": 0.6},
]
READ_FAULTS = [{"kind": "503_before", "probability": 0.1}, {"kind": "429", "probability": 0.05}]
OFFERS = ["fallbackOffer1234", "fallbackOffer5678"]
PROFILES = [("Ada@Example.com", "Email"), ("grace@example.com", "Email")]
PER_TARGET = 55  # 4 targets x 55 = 220 patches


def fault_rules(seed: int) -> list[dict[str, Any]]:
    rules = []
    for route in ("offer.patch", "profile.patch"):
        rules += [{"route": route, "seed": seed + i, **rule} for i, rule in enumerate(PATCH_FAULTS)]
    for route in ("offer.get", "profile.get"):
        rules += [{"route": route, "seed": seed + 50 + i, **rule} for i, rule in enumerate(READ_FAULTS)]
    return rules


@pytest.mark.timeout(240)
def test_every_patch_applied_exactly_once_under_faults(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    transport = {"timeout": 0.3, "max_attempts": 10, "backoff_base": 0.01, "backoff_max": 0.05}
    adobe = set_connection(
        monkeypatch, "faulty_adobe", sandbox.url, base="adobe_offer_library_default", extra=transport
    )
    mp = set_connection(monkeypatch, "faulty_mp", sandbox.url, base="mypreferences_default", extra=transport)
    offers, profiles = OfferLibraryHook(adobe), MyPreferencesHook(mp)
    offers.get_offer(OFFERS[0])  # token before the faults start
    before_offers = {o: len(offers.get_offer(o)["labels"]) for o in OFFERS}
    before_profiles = {p: len(profiles.get_profile(*p)["CustomFields"]) for p in PROFILES}
    sandbox.state.set_faults(fault_rules(seed=7))

    reconciled = 0
    sent = 0
    for i in range(PER_TARGET):
        for offer_id in OFFERS:
            marker = f"m-{offer_id}-{i}"
            result = offers.patch_offer(offer_id, [{"op": "add", "path": "/labels/-", "value": marker}])
            reconciled += result.reconciled
            sent += 1
        for alternate_id, id_type in PROFILES:
            marker = f"m-{alternate_id}-{i}"
            patch = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": marker, "Value": str(i)}}]
            result = profiles.patch_profile(alternate_id, id_type, patch)
            reconciled += result.reconciled
            sent += 1
    sandbox.state.set_faults([])
    time.sleep(0.8)  # a slow answer the client gave up on is journaled when the server finishes it

    entries = sandbox.state.journal()
    patch_calls = [e for e in entries if e["route"] in ("offer.patch", "profile.patch")]
    faulted = [e for e in patch_calls if e["fault"]]
    kinds = collections.Counter(e["fault"] for e in faulted)
    applied = collections.Counter(
        str(e["body"][0]["value"] if e["route"] == "offer.patch" else e["body"][0]["value"]["Name"])
        for e in patch_calls
        if e["applied"]
    )

    # Faults really happened, of every kind, on more than 30% of patch calls.
    assert sent == 4 * PER_TARGET >= 200
    assert len(faulted) / len(patch_calls) >= 0.30, kinds
    assert set(kinds) == {"429", "503_before", "503_after", "drop_after", "slow"}, kinds
    assert reconciled > 0  # some answers were lost and resolved by re-reading

    # Exactly once, by the journal ...
    assert len(applied) == sent and set(applied.values()) == {1}
    # ... and by the final documents: every marker once, none lost, none duplicated.
    for offer_id in OFFERS:
        labels = sandbox.state.offer("dev", offer_id)["labels"]
        markers = [label for label in labels if label.startswith("m-")]
        assert markers == [f"m-{offer_id}-{i}" for i in range(PER_TARGET)]
        assert len(labels) == before_offers[offer_id] + PER_TARGET
    for alternate_id, id_type in PROFILES:
        fields = sandbox.state.profile("DEMO", alternate_id, id_type)["CustomFields"]
        markers = [f["Name"] for f in fields if f["Name"].startswith("m-")]
        assert markers == [f"m-{alternate_id}-{i}" for i in range(PER_TARGET)]
        assert len(fields) == before_profiles[(alternate_id, id_type)] + PER_TARGET

    print(
        f"\nfault suite: patches={sent} patch_calls={len(patch_calls)} faulted={len(faulted)} "
        f"({len(faulted) / len(patch_calls):.0%}) kinds={dict(kinds)} reconciled={reconciled} "
        f"applied_once={sum(1 for v in applied.values() if v == 1)} duplicates=0 lost=0"
    )


def test_a_guarded_patch_is_resent_safely_after_a_lost_answer(connections: Any) -> None:
    hook = OfferLibraryHook()
    current = hook.get_offer("fallbackOffer1234")
    connections.state.set_faults(
        [
            {"route": "offer.patch", "kind": "503_before", "count": 1},
            {"route": "offer.patch", "kind": "drop_after", "count": 1},
        ]
    )
    patch = [
        {"op": "test", "path": "/labels", "value": current["labels"]},
        {"op": "add", "path": "/labels/-", "value": "guarded"},
    ]
    result = hook.patch_offer("fallbackOffer1234", patch)
    assert result.reconciled
    assert connections.state.offer("dev", "fallbackOffer1234")["labels"].count("guarded") == 1
    # No pre-read was needed: the guard itself makes the resend safe.
    routes = [e["route"] for e in connections.state.journal() if e["route"] != "ims.token"]
    assert routes[:2] == ["offer.get", "offer.patch"]


def test_concurrent_change_after_a_lost_answer_is_reported_not_guessed(connections: Any) -> None:
    from airflow_provider_prefs.errors import OutcomeUnknownError

    hook = OfferLibraryHook()
    base = hook.get_offer("fallbackOffer1234")
    hook.patch_offer("fallbackOffer1234", [{"op": "replace", "path": "/name", "value": "someone else"}])
    connections.state.set_faults([{"route": "offer.patch", "kind": "503_before", "count": 1}])
    with pytest.raises(OutcomeUnknownError, match="could not tell"):
        hook.patch_offer("fallbackOffer1234", [{"op": "add", "path": "/labels/-", "value": "x"}], base=base)
    assert "x" not in connections.state.offer("dev", "fallbackOffer1234")["labels"]


def test_429_retry_after_is_honoured(connections: Any) -> None:
    hook = MyPreferencesHook()
    connections.state.set_faults([{"route": "profile.patch", "kind": "429", "retry_after": 1, "count": 1}])
    start = time.monotonic()
    hook.patch_profile("Ada@Example.com", "Email", [{"op": "replace", "path": "/CustomerType", "value": "Retail"}])
    assert time.monotonic() - start >= 1.0
    assert [e["status"] for e in connections.state.journal() if e["route"] == "profile.patch"] == [429, 200]
