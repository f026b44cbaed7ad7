"""Feeds shaped like real consent and preference exports, and what applying them in order must give.

A feed has several events per customer, interleaved across customers, of four kinds: a replace of a
field, a desired state, an append to ``CustomFields`` and a remove by array index. The expected end
state is the feed applied sequentially, in input order, to the starting documents (plain
``jsonpatch`` and the merge rule of desired states): what a bulk run must leave, whatever its
concurrency, faults, retries or other writers.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import Counter
from typing import Any

import jsonpatch

from airflow_provider_prefs.patching.rules import merge_desired

CLIENT = "DEMO"
ID_TYPE = "Email"
#: ``CustomFields`` entries another writer appends are named so; a feed never appends such names.
OTHER_PREFIX = "other-"
KINDS = ("replace", "desired", "append", "remove")


def customers(count: int) -> list[str]:
    return [f"feed{n}@example.com" for n in range(count)]


def starting_profile(n: int) -> dict[str, Any]:
    return {
        "ProfileId": 5000 + n,
        "IsActive": True,
        "Edited": {"Date": "2026-01-01T00:00:00Z", "By": "seed"},
        "RegistrationConfirmed": True,
        "CustomerType": "Retail",
        "PreserveConsents": True,
        "PreservePreferences": True,
        "CustomerName": {"FirstName": f"Feed{n}", "LastName": "Start"},
        "DefaultLocale": "en-US",
        "CustomFields": [{"Name": f"seed{i}", "Value": str(i)} for i in range(8)],
    }


def seed_profiles(state: Any, emails: list[str]) -> dict[str, dict[str, Any]]:
    """Create the feed's customers in the sandbox; returns their starting documents by email."""
    docs = {email: starting_profile(n) for n, email in enumerate(emails)}
    state.add_profiles(
        CLIENT,
        [{"alternate_id": e, "alternate_id_type": ID_TYPE, "profile": copy.deepcopy(d)} for e, d in docs.items()],
    )
    return docs


def event(kind: str, email: str, step: int) -> dict[str, Any]:
    """One feed row; odd steps spell the customer's id in upper case (the vendor matches case-insensitively)."""
    alternate_id = email.upper() if step % 2 else email
    if kind == "replace":
        return {
            "alternate_id": alternate_id,
            "patch": [{"op": "replace", "path": "/CustomerType", "value": f"v{step}"}],
        }
    if kind == "desired":
        return {
            "alternate_id": alternate_id,
            "desired": {"CustomerType": f"v{step}", "CustomerName": {"LastName": f"d{step}"}},
        }
    if kind == "append":
        entry = {"Name": f"{email}-e{step}", "Value": str(step)}
        return {"alternate_id": alternate_id, "patch": [{"op": "add", "path": "/CustomFields/-", "value": entry}]}
    if kind == "remove":
        return {"alternate_id": alternate_id, "patch": [{"op": "remove", "path": "/CustomFields/0"}]}
    raise ValueError(kind)


def feed(emails: list[str], per_customer: int, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """``per_customer`` events for each customer, round-robin across customers, kinds cycling.

    A remove takes the first entry; at most a third of a customer's events are removes, so with
    eight starting entries a remove never reaches another writer's appended entries.
    """
    rows = []
    cycle = {email: itertools.cycle(kinds) for email in emails}
    for step in range(per_customer):
        for email in emails:
            kind = next(cycle[email])
            if kind == "remove" and step % 3:
                kind = "append" if "append" in kinds else "replace" if "replace" in kinds else "desired"
            rows.append(event(kind, email, step))
    return rows


def applied_in_order(start: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The documents after applying ``rows`` one by one, in input order (ids compared case-insensitively)."""
    docs = copy.deepcopy(start)
    by_folded = {email.casefold(): email for email in docs}
    for row in rows:
        email = by_folded[row["alternate_id"].casefold()]
        if "desired" in row:
            docs[email] = merge_desired(docs[email], row["desired"])
        else:
            docs[email] = jsonpatch.apply_patch(docs[email], row["patch"])
    return docs


def check_feed(state: Any, expected: dict[str, dict[str, Any]], others: Counter[str]) -> None:
    """The sandbox holds exactly the in-order result, plus each other writer's entry exactly once."""
    for email, want in expected.items():
        got = state.profile(CLIENT, email, ID_TYPE)
        fields = got["CustomFields"]
        ours = [f for f in fields if not f["Name"].startswith(OTHER_PREFIX)]
        assert ours == want["CustomFields"], f"{email}: CustomFields {ours} != in-order result {want['CustomFields']}"
        names = Counter(f["Name"] for f in ours)
        assert all(count == 1 for count in names.values()), f"{email}: an entry landed twice: {names}"
        theirs = Counter(f["Name"] for f in fields if f["Name"].startswith(OTHER_PREFIX))
        assert theirs == Counter({n: 1 for n in others if n.startswith(f"{OTHER_PREFIX}{email}-")}), (
            f"{email}: another writer's entries lost or doubled: {theirs}"
        )
        for field in ("CustomerType", "CustomerName"):
            assert got[field] == want[field], f"{email}: {field} {got[field]!r} != in-order result {want[field]!r}"


class OtherWriter:
    """Another system appending to the same profiles while the run goes on (through the sandbox itself)."""

    def __init__(self, state: Any, emails: list[str], interval: float = 0.003) -> None:
        self.state, self.emails, self.interval = state, emails, interval
        self.appended: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for n in itertools.count():
            if self._stop.wait(self.interval):
                return
            email = self.emails[n % len(self.emails)]
            name = f"{OTHER_PREFIX}{email}-{n}"
            op = {"op": "add", "path": "/CustomFields/-", "value": {"Name": name, "Value": "x"}}
            self.state.patch_profile(CLIENT, email, ID_TYPE, [op], caller="other-writer")
            self.appended[name] += 1

    def __enter__(self) -> OtherWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


#: About 35 % of PATCHes meet a fault: refused before processing, processed with the answer lost,
#: answered after the client's timeout, or held back and processed after the client gave up.
FAULTS: list[dict[str, Any]] = [
    {"route": "profile.patch", "kind": "503_before", "probability": 0.08},
    {"route": "profile.patch", "kind": "503_after", "probability": 0.08},
    {"route": "profile.patch", "kind": "drop_after", "probability": 0.06},
    {"route": "profile.patch", "kind": "slow_after", "probability": 0.06, "delay": 0.8},
    {"route": "profile.patch", "kind": "late_apply", "probability": 0.06, "delay": 0.8},
    {"route": "profile.patch", "kind": "429", "probability": 0.05},
]
#: What the client gets under faults: a timeout shorter than the slow faults, room for retries.
FAULT_TRANSPORT: dict[str, Any] = {"timeout": 0.4, "max_attempts": 12, "backoff_base": 0.01, "backoff_max": 0.05}
#: Longest a held-back request stays in the sandbox: wait this long before judging the end state.
SETTLE_SECONDS = 1.0


def seeded(faults: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    return [{**rule, "seed": seed * 100 + n} for n, rule in enumerate(faults)]
