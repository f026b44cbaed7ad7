"""The bulk crash tests' items: one unguarded append per profile, and how often each one landed.

``add /CustomFields/-`` applies again whenever it is sent again, so counting the marked entries of
every profile afterwards shows each item applied twice (duplicated) or never (missing).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MARK = "crash-test"
CLIENT_ID = "DEMO"


def emails(count: int, prefix: str = "crash") -> list[str]:
    """``count`` alternate ids of profiles no other test touches."""
    return [f"{prefix}{n:05d}@example.com" for n in range(count)]


def add_profiles(sandbox_url: str, alternate_ids: Sequence[str], first_profile_id: int = 50_000) -> None:
    """Create a fresh profile, with no custom field, for every alternate id (through the sandbox's control API)."""
    profiles = [
        {
            "alternate_id": alternate_id,
            "alternate_id_type": "Email",
            "profile": {
                "ProfileId": first_profile_id + n,
                "IsActive": True,
                "CustomerType": "Retail",
                "CustomFields": [],
            },
        }
        for n, alternate_id in enumerate(alternate_ids)
    ]
    request = urllib.request.Request(
        f"{sandbox_url}/_sandbox/profiles/{CLIENT_ID}",
        data=json.dumps({"profiles": profiles}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert json.loads(answer.read()) == {"added": len(profiles)}


def write_items(path: Path, alternate_ids: Sequence[str]) -> Path:
    """A JSON Lines items file: one marked append per profile."""
    lines = (
        {
            "alternate_id": alternate_id,
            "patch": [{"op": "add", "path": "/CustomFields/-", "value": {"Name": MARK, "Value": "1"}}],
        }
        for alternate_id in alternate_ids
    )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def entries_per_profile(sandbox: Any, alternate_ids: Sequence[str]) -> list[int]:
    """How many marked entries each profile holds now: 1 each when every item landed exactly once."""
    return [
        sum(1 for f in sandbox.state.profile(CLIENT_ID, a, "Email")["CustomFields"] if f.get("Name") == MARK)
        for a in alternate_ids
    ]


def duplicated_and_missing(counts: Sequence[int]) -> tuple[int, int]:
    """(profiles with more than one entry, profiles with none)."""
    return sum(1 for c in counts if c > 1), sum(1 for c in counts if c == 0)
