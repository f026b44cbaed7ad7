"""The one retry policy both services use, and the gate that makes a whole batch back off together."""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """Bounded retries with exponential backoff and full jitter, honouring ``Retry-After``.

    ``max_attempts`` counts every try of one request (1 = no retry); ``max_total_seconds`` caps the
    time spent waiting between tries, so a 3 a.m. run cannot hang on a throttled service.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    max_total_seconds: float = Field(default=120.0, ge=0)
    #: A ``Retry-After`` longer than this is not waited for: the error surfaces instead.
    max_retry_after: float = Field(default=60.0, ge=0)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before try ``attempt + 1``: full jitter over an exponentially growing cap."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, cap)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's ``Retry-After`` wins over our own backoff when it is given."""
        if retry_after is not None:
            return retry_after
        return self.backoff(attempt)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class BackoffGate:
    """A pause shared by every thread using one hook.

    When one request is throttled (429), all requests of the batch wait out the same
    ``Retry-After`` instead of each worker hammering the service on its own schedule.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every caller of :meth:`wait` for ``seconds`` from now (extends, never shortens)."""
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds until the gate opens again (0 when open)."""
        return max(0.0, self._resume_at - time.monotonic())

    def wait(self) -> None:
        """Block until the gate is open."""
        while (left := self.remaining()) > 0:
            time.sleep(left)
