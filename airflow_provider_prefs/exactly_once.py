"""Send a patch so that it is applied exactly once, even when the answer is lost.

A 5xx, a reset or a read timeout after a PATCH was sent leaves its fate unknown. Instead of a blind
resend (which would append twice for ``add /-``), the resource is re-read and judged:

* with the document the patch was planned against (``base``): unchanged (same ``etag`` for offers)
  means not applied, so resend; equal to ``base`` + patch means applied, so done;
* a patch guarded by ``test`` ops: guards still holding means not applied; guards broken and the
  document equal to what the patch produces means applied;
* a patch with no array-position ops (re-applying it changes nothing): effect already present
  means done, otherwise resend;
* anything else is reported as :class:`OutcomeUnknownError` with what to check.

Hooks pre-read ``base`` for unguarded array-position patches, so in practice only a concurrent change
by someone else ends in "unknown".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jsonpointer

from airflow_provider_prefs.errors import OutcomeUnknownError, PatchValidationError
from airflow_provider_prefs.patching import Patch, PatchRules, apply_patch, is_guarded, touches_array_position

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
    """True when only a pre-read document can tell, after a lost answer, whether ``ops`` landed."""
    return not is_guarded(ops) and any(touches_array_position(op) for op in ops)


def judge(
    ops: Patch,
    current: dict[str, Any],
    rules: PatchRules,
    *,
    base: dict[str, Any] | None = None,
    version_key: str | None = None,
) -> tuple[Verdict, str]:
    """Decide from the re-read ``current`` document whether ``ops`` was applied."""
    view = rules.strip_read_only
    if base is not None:
        if version_key and current.get(version_key) == base.get(version_key):
            return Verdict.NOT_APPLIED, f"{version_key} is still {base.get(version_key)}"
        try:
            expected = apply_patch(base, ops)
        except PatchValidationError:
            return Verdict.UNKNOWN, "the patch does not apply to the document it was planned against"
        if view(current) == view(expected):
            return Verdict.APPLIED, "the document now holds the patched values"
        if not version_key and view(current) == view(base):
            return Verdict.NOT_APPLIED, "the document is unchanged"
        return Verdict.UNKNOWN, "the document changed, but not into the patched state (a concurrent change?)"

    if is_guarded(ops):
        guards = [op for op in ops if op["op"] == "test"]
        if all(_holds(current, op) for op in guards):
            return Verdict.NOT_APPLIED, "its test guards still hold"
        restored = _restore(current, guards)
        if restored is not None:
            try:
                if view(apply_patch(restored, ops)) == view(current):
                    return Verdict.APPLIED, "the guarded values moved to exactly the patched state"
            except PatchValidationError:
                pass
        return Verdict.UNKNOWN, "the guarded values were changed by someone else"

    if not any(touches_array_position(op) for op in ops):
        changes = [op for op in ops if op["op"] != "test" and not _already_removed(current, op)]
        try:
            present = not changes or view(apply_patch(current, changes)) == view(current)
        except PatchValidationError:
            present = False
        if present:
            return Verdict.APPLIED, "the document already holds the patched values"
        return Verdict.NOT_APPLIED, "the patched values are not there yet (resending is harmless)"

    return Verdict.UNKNOWN, (
        "the patch changes array positions and has no test guard, and no earlier copy of the document "
        "was read; guard it with test ops or use desired-state mode"
    )


def _holds(document: dict[str, Any], test_op: dict[str, Any]) -> bool:
    marker = object()
    return bool(jsonpointer.resolve_pointer(document, test_op["path"], marker) == test_op["value"])


def _already_removed(document: dict[str, Any], op: dict[str, Any]) -> bool:
    marker = object()
    return op["op"] == "remove" and jsonpointer.resolve_pointer(document, op["path"], marker) is marker


def _restore(document: dict[str, Any], guards: Patch) -> dict[str, Any] | None:
    """``document`` with the guarded values put back: the state the patch was written against."""
    try:
        return apply_patch(document, [{"op": "replace", "path": g["path"], "value": g["value"]} for g in guards])
    except PatchValidationError:
        return None


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
    """Send ``ops``; after an uncertain outcome, re-read and resend only when it surely did not land."""
    resends = 0
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
                    "Inspect the resource before re-running this task."
                ) from uncertain
            if resends >= max_resends:
                raise OutcomeUnknownError(
                    f"{uncertain}. The patch was not applied after {resends + 1} attempt(s); giving up."
                ) from uncertain
            resends += 1
