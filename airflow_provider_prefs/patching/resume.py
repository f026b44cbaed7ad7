"""Resume a change that an earlier try of the same task sent without getting an answer.

A task records its *intent* (the exact operations, their target, and the document they were
planned against when that is small) before sending, and the outcome after. When a retry finds an
intent but no outcome, the earlier try was cut off between sending and answering (worker killed,
answer lost, task timed out): the change may or may not have landed. :func:`resume_change`
re-reads the resource and judges it with the same rules as a lost answer
(:func:`~airflow_provider_prefs.patching.verdicts.judge`): landed means done, not landed means the
*recorded* operations are sent (never planned anew, so the guards they carry still describe the
document they were written against), undecidable means :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_provider_prefs.errors import ConcurrentModificationError, OutcomeUnknownError
from airflow_provider_prefs.models import PatchOutcome
from airflow_provider_prefs.patching.changes import Carried, PlannedChange, Resource, sent_change
from airflow_provider_prefs.patching.verdicts import Verdict, broken_guard, judge

_log = logging.getLogger(__name__)

#: A planned-against document larger than this is not recorded (the task state store warns above
#: 64 KiB per value); without it, an unguarded array patch is judged "unknown" rather than resent.
MAX_RECORDED_BASE_BYTES = 32 * 1024


def intent_record(resource: Resource, planned: PlannedChange) -> dict[str, Any]:
    """The JSON a task stores before sending ``planned``."""
    record: dict[str, Any] = {"target": resource.target, "ops": planned.ops}
    if planned.base is not None and len(json.dumps(planned.base, default=str)) <= MAX_RECORDED_BASE_BYTES:
        record["base"] = planned.base
    return record


def planned_from_intent(record: Any, resource: Resource, log: logging.Logger | Any = _log) -> PlannedChange | None:
    """The recorded change, or None when the record does not belong to ``resource`` (then plan anew)."""
    if not isinstance(record, dict) or not isinstance(record.get("ops"), list):
        return None
    if record.get("target") != resource.target:
        log.warning(
            "the checkpoint of an earlier try is for %s, this try patches %s: ignoring it",
            record.get("target"),
            resource.target,
        )
        return None
    base = record.get("base")
    return PlannedChange(ops=record["ops"], base=base if isinstance(base, dict) else None)


def resume_change(resource: Resource, planned: PlannedChange, *, log: logging.Logger | Any = _log) -> PatchOutcome:
    """Finish a change an earlier try sent without an answer: judge it on a fresh read, send only if it did not land."""
    return resumed_change(resource, planned, log=log).outcome


def resumed_change(
    resource: Resource, planned: PlannedChange, *, desired: bool = False, log: logging.Logger | Any = _log
) -> Carried:
    """:func:`resume_change`, also returning the document as it was left."""
    current = resource.read()
    verdict, why = judge(planned.ops, current, resource.rules, base=planned.base)
    if verdict is Verdict.APPLIED:
        log.warning(
            "%s: an earlier try of this task sent the patch and got no answer; a re-read shows it was applied (%s), "
            "so it is not sent again",
            resource.target,
            why,
        )
        outcome = PatchOutcome(status="applied", target=resource.target, operations=len(planned.ops), reconciled=True)
        return Carried(resource.summarize(outcome, current), current)
    failed = broken_guard(planned.ops, current)
    if failed is not None and (verdict is Verdict.NOT_APPLIED or desired):
        # Its guard no longer holds, so no copy of it can land: plan the change again (see carry_out).
        raise ConcurrentModificationError(
            f"{resource.target}: an earlier try of this task sent a patch and got no answer; it did not land and "
            f"its test of {failed['path']} no longer holds",
            replannable=True,
            current=current,
        )
    if verdict is Verdict.UNKNOWN:
        raise OutcomeUnknownError(
            f"{resource.target}: an earlier try of this task sent {len(planned.ops)} operation(s) and got no answer, "
            f"and re-reading could not tell whether they were applied: {why}. Inspect the resource; only if the "
            "change is missing, delete this task instance's task state (or start a new run) and run it again."
        )
    log.warning(
        "%s: an earlier try of this task sent the patch and got no answer; a re-read shows it was not applied "
        "(%s), so the recorded operations are sent again",
        resource.target,
        why,
    )
    return sent_change(resource, planned, desired=desired, log=log)
