"""Resume a change that an earlier try of the same task sent without getting an answer.

A change records its *intent* (the exact operations, and the document they were planned against
when that is small) before sending (see :mod:`.checkpoint`). When a retry finds an
intent but no outcome, the earlier try was cut off between sending and answering (worker killed,
answer lost, task timed out): the change may or may not have landed. :func:`resumed_change`
re-reads the resource and judges it with the same rules as a lost answer
(:func:`~airflow_provider_prefs.patching.verdicts.judge`): landed means done, not landed means the
*recorded* operations are sent (never planned anew, so the guards they carry still describe the
document they were written against), undecidable means :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_prefs.errors import ConcurrentModificationError, OutcomeUnknownError
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.patching.changes import Carried, PlannedChange, Resource, sent_change
from airflow_provider_prefs.patching.verdicts import Verdict, broken_guard, judge

_log = logging.getLogger(__name__)


def resumed_change(
    resource: Resource, planned: PlannedChange, *, desired: bool = False, log: logging.Logger | Any = _log
) -> Carried:
    """Finish a change an earlier try sent without an answer: judge it on a fresh read, send only if it did not land.

    Returns the outcome and the document as it was left (see :class:`~.changes.Carried`).
    """
    current = resource.read()
    verdict, why = judge(planned.ops, current, resource.rules, base=planned.base)
    if verdict is Verdict.APPLIED:
        log.warning(
            "%s: an earlier try of this task sent the patch and got no answer; a re-read shows it was applied (%s), "
            "so it is not sent again",
            resource.target,
            why,
        )
        outcome = ChangeOutcome(status="applied", target=resource.target, operations=len(planned.ops), reconciled=True)
        return Carried(resource.summarize(outcome, current), current)
    failed = broken_guard(planned.ops, current)
    if failed is not None and (verdict is Verdict.NOT_APPLIED or desired):
        # Its guard no longer holds, so no copy of it can land: plan the change again (see carry_steps).
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
