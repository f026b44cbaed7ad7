"""Retry maths over :class:`TransportSettings` (budgets, backoff, ``Retry-After``) and the shared 429 gate."""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime

from airflow_provider_prefs.transport.settings import TransportSettings


def backoff(settings: TransportSettings, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before try ``attempt + 1``: full jitter over an exponentially growing cap."""
    cap = min(settings.backoff_max, settings.backoff_base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, cap)


class Attempts:
    """Counts the tries of one request against the attempt and total-wait budgets of ``settings``."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.count = 0
        self.waited = 0.0

    def next_delay(self, retry_after: float | None) -> float | None:
        """Seconds to wait before the next try (the server's ``Retry-After`` wins), or None when spent."""
        settings = self.settings
        if self.count >= settings.max_attempts or (retry_after or 0) > settings.max_retry_after:
            return None
        delay = backoff(settings, self.count) if retry_after is None else retry_after
        if self.waited + delay > settings.max_total_seconds:
            return None
        self.waited += delay
        return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class BackoffGate:
    """A pause shared by every request of one client (threads or coroutines).

    When one request is throttled (429), all requests of the batch wait out the same
    ``Retry-After`` instead of each hammering the service on its own schedule.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (extends, never shortens)."""
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds until the gate opens again (0 when open)."""
        return max(0.0, self._resume_at - time.monotonic())
