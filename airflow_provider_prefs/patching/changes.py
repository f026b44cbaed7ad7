"""One change to one resource: an explicit patch or a desired state, planned, then previewed or sent exactly once.

Operators, bulk runs, the hooks' ``patch_*`` methods and users' own tasks all go through
:func:`plan_change` and :func:`send_exactly_once`, so "already up to date", dry runs and exactly-once
sends behave the same everywhere. The flow, in the order this module reads:

1. :func:`plan_change`: validate (rules), guard (``test`` ops, :mod:`.guards`) or plan from a desired state;
2. :func:`send_change`: preview a dry run, or summarize what :func:`send_exactly_once` sent;
3. :func:`send_exactly_once`: send the PATCH through the hook's client; after a lost answer, re-read,
   judge (:mod:`.verdicts`) and resend only what a second copy cannot apply twice.

A 5xx, a reset or a read timeout after a PATCH was sent leaves its fate unknown, and the request may
even still be held up in the service and land *after* the client re-read the resource. So a patch
is resent only when a second copy cannot change the document twice (guarded by ``test`` ops, which
planning adds, or idempotent); an unguarded array append is never resent. A resend refused by the
service (its guard broke because an earlier copy landed meanwhile) is judged again from a fresh read.
Anything undecidable is an :class:`~airflow_provider_prefs.errors.OutcomeUnknownError` saying what to
check. A late copy of an idempotent, unguarded patch (say ``replace /name``) re-applies the same
values; that changes nothing unless the same field was changed again in between, which only a guard
(desired-state mode, or a ``test`` op in the patch) can rule out.

No HTTP here: a :class:`Resource` carries its hook's ``send`` (the transport client) and requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefs.errors import (
    BadRequestError,
    ConcurrentModificationError,
    ConflictError,
    InvalidInputError,
    OutcomeUnknownError,
)
from airflow_provider_prefs.jsonvalue import DEFAULT_MAX_REQUEST_BYTES, encode_json
from airflow_provider_prefs.models import PatchOutcome
from airflow_provider_prefs.patching.guards import prepare, safe_to_resend
from airflow_provider_prefs.patching.rules import (
    Patch,
    PatchRules,
    plan_patch,
    render_preview,
    validate_desired,
    validate_patch,
)
from airflow_provider_prefs.patching.verdicts import Verdict, broken_guard, judge, judge_refusal, what_to_check

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatchResult:
    """The answer to a patch, or the re-read document when the answer was lost but the patch landed."""

    answer: Any
    reconciled: bool = False
    resends: int = 0


@dataclass(frozen=True)
class Resource:
    """One offer or profile, bound to the client of the hook that reads and patches it.

    Built by :meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.resource` from what a service
    hook describes (URL, parameters, target, summary).
    """

    #: How messages name it, e.g. ``offer 'fallbackOffer1234'``.
    target: str
    rules: PatchRules
    #: Reads the whole document (GET).
    read: Callable[[], dict[str, Any]]
    #: The PATCH request carrying exactly the given operations; built once, sent again on a resend.
    patch_request: Callable[[Patch], Any]
    #: Sends a request through the hook's client (retries, auth) and returns the answer's JSON.
    send: Callable[[Any], Any]
    summarize: Callable[[PatchOutcome, dict[str, Any]], PatchOutcome]
    #: Field whose change proves a patch landed (``etag`` for offers); None compares documents.
    version_key: str | None = None
    #: How often a patch may be resent after uncertain outcomes (the connection's ``max_attempts`` - 1).
    max_resends: int = 3
    #: The connection's ``max_request_bytes``: a change whose body would be larger is refused
    #: before the resource is even read.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: The Airflow asset this resource belongs to (see :mod:`airflow_provider_prefs.assets`).
    asset_uri: str | None = None


@dataclass(frozen=True)
class PlannedChange:
    """What :func:`plan_change` decided: the exact operations to send, and what they were planned on.

    ``ops`` is JSON and final: a task records it (task checkpoint) *before* sending, and a retry or a
    resumed bulk run sends these same operations again instead of planning anew, so a copy that
    already landed is recognised rather than applied twice.
    """

    ops: Patch
    #: The document the change was planned against (None when it was not read).
    base: dict[str, Any] | None = None

    @property
    def unchanged(self) -> bool:
        """True when the resource already matches: nothing to send."""
        return not self.ops


def plan_change(
    resource: Resource,
    *,
    patch: Any = None,
    desired: Any = None,
    base: dict[str, Any] | None = None,
    allow_type_changes: bool = False,
) -> PlannedChange:
    """Validate (and guard, when a second copy could apply twice) an explicit patch, or plan the
    minimal guarded patch from a desired state.

    Everything that can be judged without the resource (JSON values, read-only fields, the
    vendor's field types, body size) is checked before it is read, so bad input costs no request.
    The returned ``ops`` are final: :func:`send_change` sends exactly them, and ``base`` is the
    document they were planned against (read only when a guard or the desired state needs it).

    :param base: for an explicit patch, the document as the caller already read it: guards are
        taken from it instead of from a fresh read.
    """
    if (patch is None) == (desired is None):
        raise InvalidInputError(f"{resource.target}: give exactly one of patch or desired")
    limit = resource.max_request_bytes
    if desired is not None:
        desired = validate_desired(desired, resource.rules)
        # The planned patch carries every desired value, so a desired state over the limit cannot fit.
        encode_json(desired, limit=limit, what=f"{resource.target}: desired state")
        base = resource.read()
        ops = plan_patch(base, desired, resource.rules, allow_type_changes=allow_type_changes)
    else:
        ops = validate_patch(patch, resource.rules)
        encode_json(ops, limit=limit, what=f"PATCH {resource.target}")
        # A patch whose second copy would apply again is guarded here, against a read of the resource,
        # so the checkpointed ops are the guarded ones and a retry can resend them safely.
        ops, base = prepare(ops, resource.rules, resource.read, base)
    if ops:
        encode_json(ops, limit=limit, what=f"PATCH {resource.target}")
    return PlannedChange(ops=ops, base=base)


def send_change(
    resource: Resource,
    planned: PlannedChange,
    *,
    dry_run: bool = False,
    log: logging.Logger | Any = _log,
) -> PatchOutcome:
    """Preview (dry run) or send a planned change exactly once; return the outcome summary."""
    ops, current = planned.ops, planned.base
    if planned.unchanged:
        log.info("%s is already up to date; nothing sent", resource.target)
        return resource.summarize(
            PatchOutcome(status="unchanged", target=resource.target),
            current if current is not None else resource.read(),
        )
    if dry_run:
        if current is None:
            current = resource.read()
        log.info("Dry run, nothing sent. %s:\n%s", resource.target, render_preview(current, ops, resource.rules))
        return resource.summarize(PatchOutcome(status="dry_run", target=resource.target, operations=len(ops)), current)
    log.debug("%s: sending %d operation(s)", resource.target, len(ops))
    result = send_exactly_once(resource, planned)
    if result.reconciled:
        log.warning("%s: the answer was lost; a re-read confirmed the patch was applied once", resource.target)
    outcome = PatchOutcome(status="applied", target=resource.target, operations=len(ops), reconciled=result.reconciled)
    return resource.summarize(outcome, result.answer)


def send_exactly_once(resource: Resource, planned: PlannedChange) -> PatchResult:
    """Send ``planned.ops`` as they are; after an uncertain outcome, re-read and resend only what is safe to resend.

    ``planned.base`` (the document the operations were planned against, if read) lets a lost
    answer be judged exactly; without it the operations' own guards decide.
    """
    ops, base = planned.ops, planned.base
    action = f"PATCH {resource.target}"
    request = resource.patch_request(ops)
    resends = 0
    resendable = safe_to_resend(ops)
    while True:
        try:
            return PatchResult(answer=resource.send(request), resends=resends)
        except OutcomeUnknownError as uncertain:
            current = resource.read()
            verdict, why = judge(ops, current, resource.rules, base=base, version_key=resource.version_key)
            _log.warning("%s: %s; re-read: %s (%s)", action, uncertain, verdict.value, why)
            if verdict is Verdict.APPLIED:
                return PatchResult(answer=current, reconciled=True, resends=resends)
            if verdict is Verdict.UNKNOWN:
                raise OutcomeUnknownError(
                    f"{uncertain}. Re-reading the resource could not tell whether it was applied: {why}. "
                    f"To check: {what_to_check(ops)}."
                ) from uncertain
            if not resendable:
                raise OutcomeUnknownError(
                    f"{uncertain}. A re-read shows it not applied yet ({why}), but the request may still be "
                    "on its way and land later, and the patch has no test guard, so it was not resent (a "
                    f"second copy could apply twice). To check: {what_to_check(ops)}; plan it with a base "
                    "document (or use desired-state mode) so that it is guarded."
                ) from uncertain
            if resends >= resource.max_resends:
                raise OutcomeUnknownError(
                    f"{uncertain}. Not applied at the last re-read after {resends + 1} attempt(s); giving up. "
                    "A copy still on its way may land later (its test guard lets at most one apply). "
                    f"To check: {what_to_check(ops)}."
                ) from uncertain
            resends += 1
        except (BadRequestError, ConflictError) as refused:
            if resends == 0 and not any(op["op"] == "test" for op in ops):
                raise  # a first copy refused outright, with no guard involved: a plain bad request
            current = resource.read()
            if judge_refusal(ops, current, resource.rules, base=base):
                _log.warning("%s: refused, but a re-read shows an earlier copy was applied", action)
                return PatchResult(answer=current, reconciled=True, resends=resends)
            failed = broken_guard(ops, current)
            if failed is None:
                raise
            raise ConcurrentModificationError(
                f"{action} refused: the resource does not match the patch's test of {failed['path']} "
                f"(expected {failed['value']!r}), so it changed since the patch was planned or the test is "
                "wrong. Nothing was applied; re-read the resource before patching again."
            ) from refused


def apply_change(
    resource: Resource,
    *,
    patch: Any = None,
    desired: Any = None,
    dry_run: bool = False,
    allow_type_changes: bool = False,
    log: logging.Logger | Any = _log,
) -> PatchOutcome:
    """Plan, then preview (dry run) or send exactly once: :func:`plan_change` + :func:`send_change`."""
    planned = plan_change(resource, patch=patch, desired=desired, allow_type_changes=allow_type_changes)
    return send_change(resource, planned, dry_run=dry_run, log=log)
