"""Seed data: the documents and credentials the sandbox starts from (``seed.json``, or your own file)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_SEED = Path(__file__).with_name("seed.json")


def default_seed_data() -> dict[str, Any]:
    """A fresh copy of the bundled seed."""
    return dict(json.loads(DEFAULT_SEED.read_text()))


def load_seed(seed: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """The seed from a dict, a JSON file path, or the bundled default."""
    if seed is None:
        return default_seed_data()
    if isinstance(seed, dict):
        return copy.deepcopy(seed)
    return dict(json.loads(Path(seed).read_text()))


def iter_seed_profiles(seed: dict[str, Any], client_id: str) -> Iterator[dict[str, Any]]:
    """The profile documents of one MyPreferences client in a seed."""
    for entry in seed["mypreferences"]["profiles"].get(client_id, []):
        yield entry["profile"]


def add_seed_profile(
    seed: dict[str, Any], client_id: str, alternate_id: str, alternate_id_type: str, profile: dict[str, Any]
) -> None:
    """Add one profile to a seed (used to generate large seeds for benchmarks)."""
    seed["mypreferences"]["profiles"].setdefault(client_id, []).append(
        {"alternate_id": alternate_id, "alternate_id_type": alternate_id_type, "profile": copy.deepcopy(profile)}
    )
