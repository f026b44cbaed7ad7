"""One change to one resource: an explicit patch or a desired state, planned, previewed or sent.

Operators, bulk runs and users' own tasks all go through :func:`apply_change`, so "already up to
date", dry runs and exactly-once sends behave the same everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefs.jsonvalue import DEFAULT_MAX_REQUEST_BYTES, encode_json, parse_json_text
from airflow_provider_prefs.models import PatchOutcome
from airflow_provider_prefs.patching.exactly_once import PatchResult
from airflow_provider_prefs.patching.guards import prepare
from airflow_provider_prefs.patching.rules import (
    Patch,
    PatchRules,
    plan_patch,
    render_preview,
    validate_desired,
    validate_patch,
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """One offer or profile, bound to the hook that reads and patches it."""

    target: str
    rules: PatchRules
    read: Callable[[], dict[str, Any]]
    #: Sends exactly the given (planned) operations; the second argument is the planning base.
    patch: Callable[[Patch, dict[str, Any] | None], PatchResult]
    summarize: Callable[[PatchOutcome, dict[str, Any]], PatchOutcome]
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


def as_json(value: Any, name: str) -> Any:
    """Templated values arrive as JSON text unless the DAG renders native objects."""
    if isinstance(value, str | bytes):
        from airflow_provider_prefs.errors import PatchValidationError

        return parse_json_text(value, name, PatchValidationError)
    return value


def plan_change(
    resource: Resource, *, patch: Any = None, desired: Any = None, allow_type_changes: bool = False
) -> PlannedChange:
    """Validate (and guard, when a second copy could apply twice) an explicit patch, or plan the
    minimal guarded patch from a desired state.

    Everything that can be judged without the resource (JSON values, read-only fields, the
    vendor's field types, body size) is checked before it is read, so bad input costs no request.
    The returned ``ops`` are final: :func:`send_change` sends exactly them, and ``base`` is the
    document they were planned against (read only when a guard or the desired state needs it).
    """
    from airflow_provider_prefs.errors import InvalidInputError

    if (patch is None) == (desired is None):
        raise InvalidInputError(f"{resource.target}: give exactly one of patch or desired")
    limit = resource.max_request_bytes
    if desired is not None:
        desired = validate_desired(desired, resource.rules)
        # The planned patch carries every desired value, so a desired state over the limit cannot fit.
        encode_json(desired, limit=limit, what=f"{resource.target}: desired state")
        current = resource.read()
        ops = plan_patch(current, desired, resource.rules, allow_type_changes=allow_type_changes)
        base: dict[str, Any] | None = current
    else:
        ops = validate_patch(as_json(patch, "patch"), resource.rules)
        encode_json(ops, limit=limit, what=resource.target)
        # A patch whose second copy would apply again is guarded here, against a read of the resource,
        # so the checkpointed ops are the guarded ones and a retry can resend them safely.
        ops, base = prepare(ops, resource.rules, resource.read)
    if ops:
        encode_json(ops, limit=limit, what=resource.target)
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
    result = resource.patch(ops, current)
    if result.reconciled:
        log.warning("%s: the answer was lost; a re-read confirmed the patch was applied once", resource.target)
    outcome = PatchOutcome(status="applied", target=resource.target, operations=len(ops), reconciled=result.reconciled)
    return resource.summarize(outcome, result.answer)


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
