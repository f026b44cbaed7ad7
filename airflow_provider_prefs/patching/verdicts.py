"""Judge from a fresh read whether a patch whose answer was lost (or that the service refused) was applied.

The exactly-once send loop (:func:`~airflow_provider_prefs.patching.changes.send_exactly_once`) and
task-level resume (:mod:`~airflow_provider_prefs.patching.resume`) ask these questions after the fact;
they are not on the send path itself.

* :func:`judge`: applied, surely not applied *yet*, or unknown. "Not applied" never means "resend
  freely": a copy still held up in the service may land later, so the caller resends only what
  :func:`~airflow_provider_prefs.patching.guards.resend_safe` allows.
* :func:`judge_refusal`: a patch the service refused (its guard broke) is nevertheless in place,
  because an earlier copy landed.
* :func:`landed_among`: the same question when someone else changed the document too (another
  task, another system): each change of the patch is looked for on its own.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import jsonpointer

from airflow_provider_prefs.errors import PatchValidationError
from airflow_provider_prefs.patching.guards import changes_again, resend_safe
from airflow_provider_prefs.patching.rules import Patch, PatchRules, apply_patch, is_guarded


class Verdict(Enum):
    """What a re-read says about a patch whose answer was lost."""

    APPLIED = "applied"
    NOT_APPLIED = "not applied"
    UNKNOWN = "unknown"


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
    the caller resends only what :func:`~airflow_provider_prefs.patching.guards.resend_safe` allows.
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
    pinned = is_guarded(ops) or (any(changes_again(op) for op in ops) and resend_safe(ops))
    if guards and pinned and all(_holds(current, op) for op in guards):
        # Every (repeatable) change lies under a test: had the patch landed, a tested value would differ.
        return Verdict.NOT_APPLIED, "its test guards still hold"
    if base is None and is_guarded(ops):
        if _matches_patched(ops, current, rules, guards):
            return Verdict.APPLIED, "the guarded values moved to exactly the patched state"
        return Verdict.UNKNOWN, "the guarded values were changed by someone else"
    if base is None and not any(changes_again(op) for op in ops):
        if _present(ops, current, rules):
            return Verdict.APPLIED, "the document already holds the patched values"
        return Verdict.NOT_APPLIED, "the patched values are not there yet (resending is harmless)"
    if base is not None:
        landed = landed_among(ops, base, current)
        if landed is True:
            return Verdict.APPLIED, "each of its changes is in place (the document was changed by others too)"
        if landed is False and broken_guard(ops, current) is not None:
            # A copy still on its way is refused by the same broken guard: it can never land.
            return Verdict.NOT_APPLIED, "none of its changes is there, and its test guard no longer holds"
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
    return not any(changes_again(op) for op in ops) and _present(ops, current, rules)


def landed_among(ops: Patch, base: dict[str, Any], current: dict[str, Any]) -> bool | None:
    """Whether every change of ``ops`` (planned on ``base``) is in ``current``, when others changed it too.

    Each change is looked for on its own: an appended entry is there once more than in ``base``, a
    removed element once less, a set member holds its new value. True when all are in place, False
    when none is, None when some are, or when a change cannot be told apart from someone else's
    (a member someone else set to a third value, a copy). An entry another writer appends with
    exactly the same value as ours is indistinguishable from ours: it counts as ours.
    """
    found = [_change_landed(op, base, current) for op in ops if op["op"] != "test"]
    if found and all(landed is True for landed in found):
        return True
    if found and all(landed is False for landed in found):
        return False
    return None


def _change_landed(op: dict[str, Any], base: dict[str, Any], current: dict[str, Any]) -> bool | None:
    marker = object()
    pointer = jsonpointer.JsonPointer(op["path"])
    parent_tokens, last = pointer.parts[:-1], pointer.parts[-1] if pointer.parts else None
    parent_pointer = jsonpointer.JsonPointer.from_parts(parent_tokens)
    before_parent = parent_pointer.resolve(base, marker)
    now_parent = parent_pointer.resolve(current, marker)
    if op["op"] in ("copy", "move") or last is None:
        return None
    if isinstance(before_parent, list):
        if not isinstance(now_parent, list):
            return None
        if op["op"] == "add":
            return now_parent.count(op["value"]) > before_parent.count(op["value"])
        if not last.isdigit() or int(last) >= len(before_parent):
            return None
        element = before_parent[int(last)]
        if op["op"] == "remove":
            return now_parent.count(element) < before_parent.count(element)
        if len(now_parent) != len(before_parent):
            return None
        return _member_landed(op["value"], element, now_parent[int(last)])
    before = pointer.resolve(base, marker)
    now = pointer.resolve(current, marker)
    if op["op"] == "remove":
        return True if now is marker else (False if now == before else None)
    return _member_landed(op["value"], before, now)


def _member_landed(value: Any, before: Any, now: Any) -> bool | None:
    if now == value:
        return True
    return False if now == before else None


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


def broken_guard(ops: Patch, current: dict[str, Any]) -> dict[str, Any] | None:
    """The first ``test`` op that does not hold on ``current``, if any."""
    return next((op for op in ops if op["op"] == "test" and not _holds(current, op)), None)


def what_to_check(ops: Patch) -> str:
    """What a user should look at when the fate of ``ops`` cannot be decided."""
    paths = sorted({op["path"] for op in ops if op["op"] != "test"})
    return f"read the resource and look at {', '.join(paths)} before re-running this task"
