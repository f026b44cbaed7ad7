"""Send a patch so that it is applied exactly once, even when the answer is lost or the request is late.

A 5xx, a reset or a read timeout after a PATCH was sent leaves its fate unknown, and the request may
even still be held up in the service and land *after* the client re-read the resource. So:

* the patch is re-read and judged (:func:`judge`): applied, surely not applied *yet*, or unknown;
* it is resent only when a second copy cannot change the document twice
  (:func:`~airflow_provider_prefs.patching.guards.safe_to_resend`: guarded by ``test`` ops, which
  :func:`~airflow_provider_prefs.patching.guards.prepare` adds when the change is planned, or idempotent).
  An unguarded array append is never resent: a copy that is still on its way would append again;
* a resend refused by the service (its guard broke because an earlier copy landed meanwhile) is
  judged again from a fresh read: the document holding the patched state means applied;
* anything undecidable is an :class:`OutcomeUnknownError` saying what to check.

A late copy of an idempotent, unguarded patch (say ``replace /name``) re-applies the same values; that
changes nothing unless the same field was changed again in between, which only a guard (desired-state
mode, or a ``test`` op in the patch) can rule out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jsonpointer

from airflow_provider_prefs.errors import (
    BadRequestError,
    ConcurrentModificationError,
    ConflictError,
    OutcomeUnknownError,
    PatchValidationError,
)
from airflow_provider_prefs.patching.guards import needs_guard, repeat_changes, safe_to_resend
from airflow_provider_prefs.patching.rules import Patch, PatchRules, apply_patch, is_guarded

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What a re-read says about a patch whose answer was lost."""

    APPLIED = "applied"
    NOT_APPLIED = "not applied"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PatchResult:
    """The answer to a patch, or the re-read document when the answer was lost but the patch landed."""

    answer: Any
    reconciled: bool = False
    resends: int = 0


def needs_base(ops: Patch) -> bool:
    """True when ``ops`` must be guarded from a pre-read document before it is sent (see :func:`needs_guard`)."""
    return needs_guard(ops)


def judge(
    ops: Patch,
    current: dict[str, Any],
    rules: PatchRules,
    *,
    base: dict[str, Any] | None = None,
    version_key: str | None = None,
) -> tuple[Verdict, str]:
    """Decide from the re-read ``current`` document whether ``ops`` was applied.

    NOT_APPLIED means "not applied at the time of the re-read": a held-up copy may still land, so
    the caller resends only what :func:`~airflow_provider_prefs.patching.guards.safe_to_resend` allows.
    """
    view = rules.strip_read_only
    if base is not None:
        try:
            expected = apply_patch(base, ops)
        except PatchValidationError:
            return Verdict.UNKNOWN, "the patch does not apply to the document it was planned against"
        if view(current) == view(expected):
            return Verdict.APPLIED, "the document now holds the patched values"
        if version_key and current.get(version_key) == base.get(version_key):
            return Verdict.NOT_APPLIED, f"{version_key} is still {base.get(version_key)}"
        if view(current) == view(base):
            return Verdict.NOT_APPLIED, "the document is unchanged"

    guards = [op for op in ops if op["op"] == "test"]
    pinned = is_guarded(ops) or (any(repeat_changes(op) for op in ops) and safe_to_resend(ops))
    if guards and pinned and all(_holds(current, op) for op in guards):
        # Every (repeatable) change lies under a test: had the patch landed, a tested value would differ.
        return Verdict.NOT_APPLIED, "its test guards still hold"
    if base is None and is_guarded(ops):
        if _matches_patched(ops, current, rules, guards):
            return Verdict.APPLIED, "the guarded values moved to exactly the patched state"
        return Verdict.UNKNOWN, "the guarded values were changed by someone else"
    if base is None and not any(repeat_changes(op) for op in ops):
        if _present(ops, current, rules):
            return Verdict.APPLIED, "the document already holds the patched values"
        return Verdict.NOT_APPLIED, "the patched values are not there yet (resending is harmless)"
    if base is not None:
        return Verdict.UNKNOWN, "the document changed, but not into the patched state (a concurrent change?)"
    return Verdict.UNKNOWN, (
        "the patch changes array positions and has no test guard, and no earlier copy of the document "
        "was read; guard it with test ops or use desired-state mode"
    )


def judge_refusal(
    ops: Patch, current: dict[str, Any], rules: PatchRules, *, base: dict[str, Any] | None = None
) -> bool:
    """True when a patch the service refused (400/409) is nevertheless in place: an earlier copy landed.

    Stricter than :func:`judge`: a refused patch counts as applied only if the document is exactly
    what the patch makes of ``base`` (or, without ``base``, of its guarded values), so a refusal by a
    caller's own ``test`` op is never mistaken for success.
    """
    if base is not None:
        try:
            return rules.strip_read_only(current) == rules.strip_read_only(apply_patch(base, ops))
        except PatchValidationError:
            return False
    guards = [op for op in ops if op["op"] == "test"]
    if guards:
        return is_guarded(ops) and _matches_patched(ops, current, rules, guards)
    # An untested idempotent patch refused on a resend: e.g. a remove whose first copy already landed.
    return not any(repeat_changes(op) for op in ops) and _present(ops, current, rules)


def _holds(document: dict[str, Any], test_op: dict[str, Any]) -> bool:
    marker = object()
    return bool(jsonpointer.resolve_pointer(document, test_op["path"], marker) == test_op["value"])


def _present(ops: Patch, current: dict[str, Any], rules: PatchRules) -> bool:
    """True when re-applying the (idempotent) changes of ``ops`` would leave ``current`` as it is."""
    view = rules.strip_read_only
    changes = [op for op in ops if op["op"] != "test" and not _already_removed(current, op)]
    try:
        return not changes or view(apply_patch(current, changes)) == view(current)
    except PatchValidationError:
        return False


def _matches_patched(ops: Patch, current: dict[str, Any], rules: PatchRules, guards: Patch) -> bool:
    """True when ``current`` is what ``ops`` makes of ``current`` with its guarded values put back."""
    try:
        restored = apply_patch(current, [{"op": "replace", "path": g["path"], "value": g["value"]} for g in guards])
        return rules.strip_read_only(apply_patch(restored, ops)) == rules.strip_read_only(current)
    except PatchValidationError:
        return False


def _already_removed(document: dict[str, Any], op: dict[str, Any]) -> bool:
    marker = object()
    return op["op"] == "remove" and jsonpointer.resolve_pointer(document, op["path"], marker) is marker


def _broken_guard(ops: Patch, current: dict[str, Any]) -> dict[str, Any] | None:
    """The first ``test`` op that does not hold on ``current``, if any."""
    return next((op for op in ops if op["op"] == "test" and not _holds(current, op)), None)


def _what_to_check(ops: Patch) -> str:
    paths = sorted({op["path"] for op in ops if op["op"] != "test"})
    return f"read the resource and look at {', '.join(paths)} before re-running this task"


def send_exactly_once(
    *,
    action: str,
    ops: Patch,
    rules: PatchRules,
    send: Callable[[], Any],
    read: Callable[[], dict[str, Any]],
    base: dict[str, Any] | None = None,
    version_key: str | None = None,
    max_resends: int = 3,
) -> PatchResult:
    """Send ``ops`` as they are; after an uncertain outcome, re-read and resend only what is safe to resend."""
    resends = 0
    resendable = safe_to_resend(ops)
    while True:
        try:
            return PatchResult(answer=send(), resends=resends)
        except OutcomeUnknownError as uncertain:
            current = read()
            verdict, why = judge(ops, current, rules, base=base, version_key=version_key)
            log.warning("%s: %s; re-read: %s (%s)", action, uncertain, verdict.value, why)
            if verdict is Verdict.APPLIED:
                return PatchResult(answer=current, reconciled=True, resends=resends)
            if verdict is Verdict.UNKNOWN:
                raise OutcomeUnknownError(
                    f"{uncertain}. Re-reading the resource could not tell whether it was applied: {why}. "
                    f"To check: {_what_to_check(ops)}."
                ) from uncertain
            if not resendable:
                raise OutcomeUnknownError(
                    f"{uncertain}. A re-read shows it not applied yet ({why}), but the request may still be "
                    "on its way and land later, and the patch has no test guard, so it was not resent (a "
                    f"second copy could apply twice). To check: {_what_to_check(ops)}; plan it with a base "
                    "document (or use desired-state mode) so that it is guarded."
                ) from uncertain
            if resends >= max_resends:
                raise OutcomeUnknownError(
                    f"{uncertain}. Not applied at the last re-read after {resends + 1} attempt(s); giving up. "
                    "A copy still on its way may land later (its test guard lets at most one apply). "
                    f"To check: {_what_to_check(ops)}."
                ) from uncertain
            resends += 1
        except (BadRequestError, ConflictError) as refused:
            if resends == 0 and not any(op["op"] == "test" for op in ops):
                raise  # a first copy refused outright, with no guard involved: a plain bad request
            current = read()
            if judge_refusal(ops, current, rules, base=base):
                log.warning("%s: refused, but a re-read shows an earlier copy was applied", action)
                return PatchResult(answer=current, reconciled=True, resends=resends)
            failed = _broken_guard(ops, current)
            if failed is None:
                raise
            raise ConcurrentModificationError(
                f"{action} refused: the resource does not match the patch's test of {failed['path']} "
                f"(expected {failed['value']!r}), so it changed since the patch was planned or the test is "
                "wrong. Nothing was applied; re-read the resource before patching again."
            ) from refused
