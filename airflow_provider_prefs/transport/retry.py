"""Retry maths over :class:`TransportSettings` (attempt and wait budgets, backoff, ``Retry-After``); the 429 gate."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from email.utils import parsedate_to_datetime

from airflow_provider_prefs.transport.settings import TransportSettings


class Attempts:
    """Counts the tries of one request against the attempt and total-wait budgets of ``settings``."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.count = 0
        self.waited = 0.0

    def next_delay(self, retry_after: float | None) -> float | None:
        """Seconds before the next try (``Retry-After``, else jittered exponential backoff), None once over budget."""
        settings = self.settings
        if self.count >= settings.max_attempts or (retry_after or 0) > settings.max_retry_after:
            return None
        if retry_after is None:
            retry_after = random.uniform(0, min(settings.backoff_max, settings.backoff_base * 2 ** (self.count - 1)))
        if self.waited + retry_after > settings.max_total_seconds:
            return None
        self.waited += retry_after
        return retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (None if neither)."""
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(value or ""))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, parsedate_to_datetime(value or "").timestamp() - time.time())
    return None


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
