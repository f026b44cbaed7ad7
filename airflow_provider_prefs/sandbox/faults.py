"""Injectable faults, per route: throttling, failures before or after processing, drops, slowness.

Two kinds delay a request, and they differ in *when* the work happens, which is what decides whether
a client that gave up on the answer may see the change on its re-read:

* ``slow_after`` (``slow`` is its older name): processed at once, then the answer is held back for
  ``delay`` seconds; a re-read after the client's timeout already sees the change.
* ``late_apply``: held back for ``delay`` seconds first, then processed and answered; a client whose
  timeout is shorter re-reads the *unchanged* document, and the request lands afterwards.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["429", "503_before", "503_after", "drop_after", "slow", "slow_after", "late_apply"]
KINDS = ("429", "503_before", "503_after", "drop_after", "slow", "slow_after", "late_apply")
#: Faults answered before the request is processed (nothing is applied).
BEFORE_PROCESSING = frozenset({"429", "503_before"})
#: Faults that process the request, then hold the answer back for ``delay`` seconds.
DELAY_AFTER_PROCESSING = frozenset({"slow", "slow_after"})
#: Faults that hold the request back for ``delay`` seconds, then process and answer it.
DELAY_BEFORE_PROCESSING = frozenset({"late_apply"})


@dataclass
class FaultRule:
    """One rule: on ``route`` (or ``*``), inject ``kind`` with ``probability``, at most ``count`` times."""

    route: str
    kind: FaultKind
    probability: float = 1.0
    count: int | None = None
    retry_after: int | None = None
    delay: float = 1.0
    seed: int | None = None
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Build from the JSON form used by ``PUT /_sandbox/faults``."""
        allowed = {"route", "kind", "probability", "count", "retry_after", "delay", "seed"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        return cls(**{key: data[key] for key in allowed if key in data and data[key] is not None})

    def fires(self, route: str) -> bool:
        """Roll for this request (the caller holds the lock)."""
        if self.route not in ("*", route):
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with how often it fired."""
        return {
            "route": self.route,
            "kind": self.kind,
            "probability": self.probability,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "seed": self.seed,
            "fired": self.fired,
        }


class FaultPlan:
    """The active rules; the first rule that fires wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def replace(self, rules: list[dict[str, Any]] | list[FaultRule]) -> None:
        """Swap in new rules."""
        parsed = [rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule) for rule in rules]
        with self._lock:
            self.rules = parsed

    def pick(self, route: str) -> FaultRule | None:
        """The fault for this request, if any."""
        if not self.rules:
            return None
        with self._lock:
            for rule in self.rules:
                if rule.fires(route):
                    return rule
        return None
