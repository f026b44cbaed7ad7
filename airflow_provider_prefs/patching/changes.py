"""One change to one resource: an explicit patch or a desired state, planned, then previewed or sent exactly once.

Every change (a patch operator, a bulk item, a TaskFlow task calling the hooks' ``change_*``) is
carried out by :func:`carry_steps`, under the checkpoint policy applied by the hook's ``carry``, so
"already up to date", dry runs, conflicts and exactly-once sends behave the same everywhere. The
flow, in the order this module reads:

1. :func:`plan_change`: validate (rules), guard (``test`` ops, :mod:`.guards`) or plan from a desired state;
2. :func:`sent_change`: preview a dry run, or summarize what :func:`send_exactly_once` sent;
3. :func:`send_exactly_once`: send the PATCH through the hook's client; after a lost answer, re-read,
   judge (:mod:`.verdicts`) and resend only what a second copy cannot apply twice;
4. :func:`carry_steps`: plan, record, send; plan again when someone else's change broke a guard.
   It is a generator that hands each pending record to its driver before sending: :func:`settle`
   waits for it in the calling thread (one change), the bulk runner parks the change until a shared
   write stores its record (no thread waits on the store; see :mod:`~airflow_provider_prefs.bulk.write_ahead`).

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

import dataclasses
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import jsonpointer

from airflow_provider_prefs.errors import (
    BadRequestError,
    ConcurrentModificationError,
    ConflictError,
    InvalidInputError,
    OutcomeUnknownError,
    PatchValidationError,
    quoted,
)
from airflow_provider_prefs.jsonvalue import DEFAULT_MAX_REQUEST_BYTES, encode_json
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.patching.guards import prepare, resend_safe
from airflow_provider_prefs.patching.rules import (
    Patch,
    PatchRules,
    apply_patch,
    plan_patch,
    render_preview,
    validate_desired,
    validate_patch,
)
from airflow_provider_prefs.patching.verdicts import (
    Verdict,
    broken_guard,
    judge,
    judge_refusal,
    landed_among,
    what_to_check,
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
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
    summarize: Callable[[ChangeOutcome, dict[str, Any]], ChangeOutcome]
    #: Field whose change proves a patch landed (``etag`` for offers); None compares documents.
    version_key: str | None = None
    #: How often a patch may be resent after uncertain outcomes (the connection's ``max_attempts`` - 1).
    max_resends: int = 3
    #: The connection's ``max_request_bytes``: a change whose body would be larger is refused
    #: before the resource is even read.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: The Airflow asset this resource belongs to (see :mod:`airflow_provider_prefs.assets`).
    asset_uri: str | None = None
    #: True when the PATCH answer is the whole document (a profile); False when it is metadata (an offer).
    patch_answers_document: bool = True
    #: Identity as the service compares it (see :attr:`~airflow_provider_prefs.hooks.base.ResourceDescription.key`).
    key: tuple[Any, ...] = ()


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


@dataclass(frozen=True)
class Carried:
    """How a change ended: the outcome, the document as it was left (None when not known), and what
    the PATCH got (None when nothing was sent in the end: unchanged, dry run, an earlier try's copy)."""

    outcome: ChangeOutcome
    document: dict[str, Any] | None = None
    sent: Sent | None = None


def plan_change(
    resource: Resource,
    *,
    patch: Any = None,
    desired: Any = None,
    base: dict[str, Any] | None = None,
    allow_type_changes: bool = False,
    pin_all: bool = False,
) -> PlannedChange:
    """Validate (and guard, when a second copy could apply twice) an explicit patch, or plan the
    minimal guarded patch from a desired state.

    Everything that can be judged without the resource (JSON values, read-only fields, the
    vendor's field types, body size) is checked before it is read, so bad input costs no request.
    The returned ``ops`` are final: :func:`sent_change` sends exactly them, and ``base`` is the
    document they were planned against (read only when a guard or the desired state needs it).

    :param base: the document as the caller already read it: guards (and a desired state's plan)
        are taken from it instead of from a fresh read.
    :param pin_all: guard idempotent operations too (see :func:`~.guards.add_guards`).
    """
    if (patch is None) == (desired is None):
        raise InvalidInputError(f"{resource.target}: give exactly one of patch or desired")
    limit = resource.max_request_bytes
    checked: Patch | None = None
    if desired is not None:
        desired = validate_desired(desired, resource.rules)
        # The planned patch carries every desired value, so a desired state over the limit cannot fit.
        encode_json(desired, limit=limit, what=f"{resource.target}: desired state")
        if base is None:
            base = resource.read()
        ops = plan_patch(base, desired, resource.rules, allow_type_changes=allow_type_changes)
    else:
        ops = checked = validate_patch(patch, resource.rules)
        encode_json(ops, limit=limit, what=f"PATCH {resource.target}")
        # A patch whose second copy would apply again is guarded here, against a read of the resource,
        # so the checkpointed ops are the guarded ones and a retry can resend them safely.
        ops, base = prepare(ops, resource.rules, resource.read, base, pin_all=pin_all)
    if ops:
        if ops is not checked:  # planned, or made longer by guards: checked again
            encode_json(ops, limit=limit, what=f"PATCH {resource.target}")
        if base is None and not resend_safe(ops):
            # Operations no test can pin (a copy to a new member): only the document they apply to can
            # judge them after a lost answer, so it is read now and kept with the plan (and its record).
            base = resource.read()
    return PlannedChange(ops=ops, base=base)


def sent_change(
    resource: Resource,
    planned: PlannedChange,
    *,
    dry_run: bool = False,
    desired: bool = False,
    log: logging.Logger | Any = _log,
) -> Carried:
    """Preview (dry run) or send a planned change exactly once.

    Returns the outcome, the document as it was left and what the send got (see :class:`Carried`).
    """
    ops, current = planned.ops, planned.base
    if planned.unchanged:
        log.info("%s is already up to date; nothing sent", resource.target)
        if current is None:
            current = resource.read()
        return Carried(resource.summarize(ChangeOutcome(status="unchanged", target=resource.target), current), current)
    if dry_run:
        if current is None:
            current = resource.read()
        log.info("Dry run, nothing sent. %s:\n%s", resource.target, render_preview(current, ops, resource.rules))
        outcome = ChangeOutcome(status="dry_run", target=resource.target, operations=len(ops))
        return Carried(resource.summarize(outcome, current), current)
    log.debug("%s: sending %d operation(s)", resource.target, len(ops))
    result = send_exactly_once(resource, planned, desired=desired)
    if result.reconciled:
        log.warning("%s: the answer was lost; a re-read confirmed the patch was applied once", resource.target)
    outcome = ChangeOutcome(status="applied", target=resource.target, operations=len(ops), reconciled=result.reconciled)
    return Carried(resource.summarize(outcome, result.answer), document_after(resource, planned, result), result)


def document_after(resource: Resource, planned: PlannedChange, result: Sent) -> dict[str, Any] | None:
    """The document right after ``planned`` landed: the answer itself where the service answers the
    whole document, else the planned-against document patched and stamped with the answer's metadata.

    Only a starting point for guards of the next change to the same resource: if anyone changed it
    meanwhile, those guards fail and the next change is planned again on a fresh read.
    """
    answer = result.answer if isinstance(result.answer, dict) else None
    if answer is None or result.reconciled or resource.patch_answers_document:
        return answer
    if planned.base is None:
        return None
    try:
        return {**apply_patch(planned.base, planned.ops), **answer}
    except PatchValidationError:
        return None


def send_exactly_once(resource: Resource, planned: PlannedChange, *, desired: bool = False) -> Sent:
    """Send ``planned.ops`` as they are; after an uncertain outcome, re-read and resend only what is safe to resend.

    ``planned.base`` (the document the operations were planned against, if read) lets a lost
    answer be judged exactly; without it the operations' own guards decide.

    Raises :class:`ConcurrentModificationError` when a guard no longer holds, with ``replannable``
    set when none of the change's copies landed or can land later (for a desired state, ``desired``,
    also when that cannot be told: planning it again from a fresh read is what a desired state means).
    """
    ops, base = planned.ops, planned.base
    action = f"PATCH {resource.target}"
    request = resource.patch_request(ops)
    resends = 0
    safe = resend_safe(ops)
    while True:
        try:
            return Sent(answer=resource.send(request), resends=resends)
        except OutcomeUnknownError as uncertain:
            current = resource.read()
            verdict, why = judge(ops, current, resource.rules, base=base, version_key=resource.version_key)
            _log.warning("%s: %s; re-read: %s (%s)", action, uncertain, verdict.value, why)
            if verdict is Verdict.APPLIED:
                return Sent(answer=current, reconciled=True, resends=resends)
            failed = broken_guard(ops, current)
            if failed is not None and (verdict is Verdict.NOT_APPLIED or desired):
                raise _conflict(action, failed, current) from uncertain
            if verdict is Verdict.UNKNOWN:
                raise OutcomeUnknownError(
                    f"{uncertain}. Re-reading the resource could not tell whether it was applied: {why}. "
                    f"To check: {what_to_check(ops)}."
                ) from uncertain
            if not safe:
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
                return Sent(answer=current, reconciled=True, resends=resends)
            failed = broken_guard(ops, current)
            if failed is None:
                raise
            # No earlier copy of this change was ever sent: the refused one is all there was, and a
            # refused patch applies nothing. Otherwise look for each of its changes among others'.
            landed = False if resends == 0 else landed_among(ops, base, current) if base is not None else None
            if landed is True:
                _log.warning("%s: refused, but a re-read shows an earlier copy was applied (before others)", action)
                return Sent(answer=current, reconciled=True, resends=resends)
            if landed is None and not desired:
                raise OutcomeUnknownError(
                    f"{action} was sent {resends + 1} time(s) without a clear answer, then refused, and the "
                    "resource was changed by others meanwhile, so a re-read cannot tell whether an earlier "
                    f"copy was applied. To check: {what_to_check(ops)}."
                ) from refused
            raise _conflict(action, failed, current) from refused


def _conflict(action: str, failed: dict[str, Any], current: dict[str, Any]) -> ConcurrentModificationError:
    return ConcurrentModificationError(
        f"{action} refused: the resource does not match the patch's test of {failed['path']} "
        f"(expected {quoted(failed['value'])}), so it changed since the patch was planned or the test is "
        "wrong. Nothing was applied; re-read the resource before patching again.",
        replannable=True,
        current=current,
    )


#: How often one change is planned again after its guard was broken by someone else's change. Each
#: replan is a read and a PATCH; a resource another system writes every few milliseconds can refuse
#: ten in a row on a loaded machine (measured: up to 10 in a feed test with a writer every 9 ms per
#: profile), so the bound is set far above that and fails only a resource that never holds still.
MAX_REPLANS = 100


@dataclass(frozen=True)
class Change:
    """What a caller wants done to one resource: an explicit JSON Patch, or a desired state."""

    patch: Any = None
    desired: Any = None
    allow_type_changes: bool = False


def carry_steps(
    resource: Resource,
    change: Change,
    *,
    recorded: PlannedChange | None = None,
    record: Callable[[PlannedChange], PendingRecord | None] | None = None,
    base: dict[str, Any] | None = None,
    pin_all: bool = False,
    dry_run: bool = False,
    log: logging.Logger | Any = _log,
) -> Generator[PendingRecord, None, Carried]:
    """Plan, record and send one change exactly once; plan it again when someone else's change broke its guard.

    A generator: where ``record`` returns a record still being stored, it is yielded, and the change
    goes on (sends) only when its driver resumes it, which it does once the record is stored, or
    throws in what the store raised. :func:`settle` drives it in the calling thread.

    :param recorded: the operations an earlier try recorded and sent without an answer: they are
        judged on a fresh read and resent only if they did not land (never planned anew first).
    :param record: called with each planned change before it is sent (a task's checkpoint): first
        the plan, then every plan made again after a conflict. It returns None once the record is
        stored, or the :class:`PendingRecord` to wait for.
    :param base: the document as the caller knows it, for guards (see :func:`plan_change`).
    :param pin_all: guard idempotent operations too (a later change of the same resource follows).

    A refusal by a guard is not a failure when the change's intent still stands: a desired state,
    an append, a replace are planned again on a fresh read (at most :data:`MAX_REPLANS` times) and
    the outcome counts the ``replans``. It fails when the change itself no longer applies: the
    patch's own ``test`` no longer holds, or an array position it names now holds something else.
    """
    is_desired = change.desired is not None
    replans = 0
    planned = recorded
    origin = recorded.base if recorded is not None else base
    while True:
        try:
            if planned is None:
                planned = plan_change(
                    resource,
                    patch=change.patch,
                    desired=change.desired,
                    base=base,
                    allow_type_changes=change.allow_type_changes,
                    pin_all=pin_all,
                )
                origin = origin if origin is not None else planned.base
                if record is not None and not planned.unchanged and not dry_run:
                    pending = record(planned)
                    if pending is not None:
                        yield pending
                carried = sent_change(resource, planned, dry_run=dry_run, desired=is_desired, log=log)
            else:
                from airflow_provider_prefs.patching.resume import resumed_change

                carried = resumed_change(resource, planned, desired=is_desired, log=log)
        except ConcurrentModificationError as conflict:
            if not conflict.replannable or replans >= MAX_REPLANS:
                if replans:
                    raise ConcurrentModificationError(
                        f"{conflict} (planned {replans + 1} times: the resource kept changing meanwhile)"
                    ) from conflict
                raise
            replans += 1
            base = conflict.current if conflict.current is not None else resource.read()
            if not is_desired:
                still_applies(change.patch, resource.rules, origin, base, resource.target)
            log.info("%s changed since the patch was planned; planning it again (%d)", resource.target, replans)
            planned = None
            continue
        if replans:
            return dataclasses.replace(carried, outcome=carried.outcome.model_copy(update={"replans": replans}))
        return carried


class PendingRecord(Protocol):
    """A change's record, handed to its checkpoint and not stored yet."""

    def wait(self) -> None:
        """Return once the record is stored; raise what storing it raised."""


_Result = TypeVar("_Result")


def settle(steps: Generator[PendingRecord, None, _Result]) -> _Result:
    """Drive ``steps`` (e.g. :func:`carry_steps`) in this thread: wait for each pending record, then go on.

    What waiting raised is thrown into the steps, so a change fails on a lost record exactly as on
    any other error before its send.
    """
    failure: BaseException | None = None
    while True:
        try:
            pending = steps.throw(failure) if failure is not None else steps.send(None)
        except StopIteration as done:
            return done.value
        failure = None
        try:
            pending.wait()
        except Exception as exc:
            failure = exc


def still_applies(
    patch: Any, rules: PatchRules, origin: dict[str, Any] | None, current: dict[str, Any], target: str
) -> None:
    """Refuse to plan an explicit patch again when it no longer means what it meant.

    Its own ``test`` ops must still hold, and every array position it names (``remove /a/2``) must
    still hold what it held when first planned (``origin``); appends and member changes stand as they are.
    """
    marker = object()
    for op in validate_patch(patch, rules):
        pointer = jsonpointer.JsonPointer(op["path"])
        if op["op"] == "test":
            now = pointer.resolve(current, marker)
            if now != op["value"]:
                shown = "nothing" if now is marker else quoted(now)
                raise ConcurrentModificationError(
                    f"PATCH {target} refused: the resource does not match the patch's test of {op['path']} "
                    f"(expected {quoted(op['value'])}, it has {shown}), so the change no longer applies. "
                    "Nothing was applied."
                )
            continue
        parts = pointer.parts
        if not parts or not parts[-1].isdigit():
            continue
        array = jsonpointer.JsonPointer.from_parts(parts[:-1])
        index = int(parts[-1]) + (0 if op["op"] == "add" else 1)
        before = array.resolve(origin, marker) if origin is not None else marker
        now = array.resolve(current, marker)
        if not isinstance(before, list) or not isinstance(now, list) or before[:index] != now[:index]:
            raise ConcurrentModificationError(
                f"PATCH {target} no longer applies: {op['op']} {op['path']} names an array position, and "
                f"{array.path or '/'} changed since the patch was planned. Nothing was applied; re-read the "
                "resource and patch it again."
            )
