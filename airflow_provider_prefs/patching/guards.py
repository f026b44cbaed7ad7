"""Self-guarding patches: ``test`` ops that make a second copy of a patch fail instead of applying.

A patch is sent again after an uncertain outcome, and a task retry resends the operations it
checkpointed; meanwhile the first copy may still be held up in the service and land later. For a
patch whose repeat changes the document again (``add`` to ``/-`` or at an index, ``remove`` at an
index, ``copy``), :func:`prepare` prefixes ``test`` ops taken from the document the patch is planned
against, pinning what it changes. The first copy to land breaks those tests, so every later copy is
refused by the service. Patches whose repeat is a no-op (``replace``, ``add``/``remove`` of an object
member) are sent as they are, with no pre-read.

Guarding happens when a change is *planned* (:func:`airflow_provider_prefs.patching.changes.plan_change`, also
behind the hooks' ``patch_*`` methods), so the operations recorded in a task checkpoint are the guarded ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpointer

from airflow_provider_prefs.patching.rules import (
    Patch,
    PatchRules,
    is_guarded,
    pin_values,
    touches_array_position,
    validate_patch,
)


def _tokens(pointer: str) -> list[str]:
    return list(jsonpointer.JsonPointer(pointer).parts)


def changes_again(op: dict[str, Any]) -> bool:
    """True when applying ``op`` again, right after it was applied, can change the document again.

    That is an op on an array position (append, insert, remove at an index) or a ``copy``/``move``.
    """
    return touches_array_position(op)


def _covered(op: dict[str, Any], tests: list[list[str]]) -> bool:
    tokens = _tokens(op["path"])
    return any(tokens[: len(test)] == test for test in tests)


def resend_safe(ops: Patch) -> bool:
    """True when a second copy of ``ops`` cannot change the document a second time.

    Either every op whose repeat would change the document lies under a ``test`` op (the first copy
    that lands breaks the test, so a later copy is refused as a whole: a patch is atomic), or no op
    is of that kind.
    """
    if is_guarded(ops):
        return True
    tests = [_tokens(op["path"]) for op in ops if op["op"] == "test"]
    return all(_covered(op, tests) for op in ops if changes_again(op))


def add_guards(ops: Patch, base: dict[str, Any], *, pin_all: bool = False) -> Patch:
    """``ops`` prefixed with ``test`` ops, from ``base``, pinning what its repeatable ops change.

    Idempotent ops are left unpinned (pinning them would only turn unrelated concurrent edits into
    refusals), unless ``pin_all``: a bulk run pins them too when a later change of the same resource
    follows, so that a late copy of this one can never land over it. A ``copy`` to a new top-level
    member cannot be pinned; such a patch stays unguarded and is never resent blindly (see
    :func:`airflow_provider_prefs.patching.changes.send_exactly_once`).
    """
    existing = {op["path"] for op in ops if op["op"] == "test"}
    pinned = [op for op in ops if op["op"] != "test" and (pin_all or changes_again(op))]
    pins = [pin for pin in pin_values(base, pinned) if pin["path"] not in existing]
    return pins + ops


def prepare(
    ops: Patch,
    rules: PatchRules,
    read: Callable[[], dict[str, Any]],
    base: dict[str, Any] | None = None,
    *,
    pin_all: bool = False,
) -> tuple[Patch, dict[str, Any] | None]:
    """The operations to send for validated ``ops``, and the document they were planned against.

    Reads the resource (only when ``base`` is not given and ``ops`` needs a guard) and returns the
    guarded operations, validated again; idempotent or already guarded ``ops`` come back unchanged,
    unless ``pin_all`` (see :func:`add_guards`).
    """
    if resend_safe(ops) and not (pin_all and not is_guarded(ops)):
        return ops, base
    if base is None:
        base = read()
    return validate_patch(add_guards(ops, base, pin_all=pin_all), rules), base
