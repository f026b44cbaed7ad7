"""One change to one resource: an explicit patch or a desired state, planned, previewed or sent.

Operators, bulk runs and users' own tasks all go through :func:`apply_change`, so "already up to
date", dry runs and exactly-once sends behave the same everywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefs.exactly_once import PatchResult
from airflow_provider_prefs.models import PatchOutcome
from airflow_provider_prefs.patching import Patch, PatchRules, plan_patch, render_preview, validate_patch

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """One offer or profile, bound to the hook that reads and patches it."""

    target: str
    rules: PatchRules
    read: Callable[[], dict[str, Any]]
    patch: Callable[[Patch, dict[str, Any] | None], PatchResult]
    summarize: Callable[[PatchOutcome, dict[str, Any]], PatchOutcome]


def as_json(value: Any, name: str) -> Any:
    """Templated values arrive as JSON text unless the DAG renders native objects."""
    if isinstance(value, str | bytes):
        from airflow_provider_prefs.errors import PatchValidationError

        try:
            return json.loads(value)
        except ValueError as exc:
            raise PatchValidationError(f"{name} is not valid JSON: {exc}") from exc
    return value


def apply_change(
    resource: Resource,
    *,
    patch: Any = None,
    desired: Any = None,
    dry_run: bool = False,
    log: logging.Logger | Any = _log,
) -> PatchOutcome:
    """Validate or plan, then preview (dry run) or send exactly once; return the outcome summary."""
    from airflow_provider_prefs.errors import InvalidInputError

    if (patch is None) == (desired is None):
        raise InvalidInputError(f"{resource.target}: give exactly one of patch or desired")
    current: dict[str, Any] | None = None
    if desired is not None:
        current = resource.read()
        ops = plan_patch(current, as_json(desired, "desired"), resource.rules)
        if not ops:
            log.info("%s is already up to date; nothing sent", resource.target)
            return resource.summarize(PatchOutcome(status="unchanged", target=resource.target), current)
    else:
        ops = validate_patch(as_json(patch, "patch"), resource.rules)
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
