"""Self-guarding sends: which patches get ``test`` guards, and how a send reconciles a late first copy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest

from airflow_provider_prefs.errors import (
    BadRequestError,
    ConcurrentModificationError,
    ConflictError,
    OutcomeUnknownError,
)
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.patching.changes import PlannedChange, Resource, plan_change, send_exactly_once, sent_change
from airflow_provider_prefs.patching.guards import add_guards, prepare, resend_safe
from airflow_provider_prefs.patching.rules import OFFER_RULES, PROFILE_RULES, Patch

OFFER: dict[str, Any] = {"id": "o1", "etag": 3, "name": "Old", "labels": ["a"], "tags": {"k": [1, 2]}}
PROFILE: dict[str, Any] = {
    "ProfileId": 7,
    "UpdateStatus": "Complete",
    "CustomerName": {"FirstName": "Ada"},
    "CustomFields": [{"Name": "a", "Value": "1"}, {"Name": "b", "Value": "2"}],
}
APPEND: Patch = [{"op": "add", "path": "/labels/-", "value": "x"}]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "/labels/-", "value": "x"},
        {"op": "add", "path": "/labels/0", "value": "x"},
        {"op": "remove", "path": "/labels/0"},
        {"op": "add", "path": "/tags/k/-", "value": 3},
        {"op": "copy", "from": "/name", "path": "/labels/-"},
    ],
)
def test_patches_whose_repeat_applies_again_are_guarded_on_the_array_they_touch(op: dict[str, Any]) -> None:
    assert not resend_safe([op])
    guarded = add_guards([op], OFFER)
    assert guarded[-1] == op and all(g["op"] == "test" for g in guarded[:-1])
    assert resend_safe(guarded)
    once = jsonpatch.apply_patch(OFFER, guarded)
    # The second copy is refused instead of applying again.
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(once, guarded)


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "replace", "path": "/name", "value": "New"}],
        [{"op": "add", "path": "/tags/new", "value": 1}],
        [{"op": "remove", "path": "/name"}],
        [{"op": "test", "path": "/labels", "value": ["a"]}, *APPEND],
    ],
)
def test_idempotent_or_already_guarded_patches_are_sent_as_they_are_without_a_read(patch: Patch) -> None:
    def no_read() -> dict[str, Any]:
        raise AssertionError("no pre-read expected")

    assert prepare(patch, OFFER_RULES, no_read) == (patch, None)


def test_prepare_reads_once_and_guards_only_the_repeatable_part() -> None:
    reads: list[int] = []

    def read() -> dict[str, Any]:
        reads.append(1)
        return copy.deepcopy(PROFILE)

    patch: Patch = [
        {"op": "replace", "path": "/CustomerName/FirstName", "value": "Grace"},
        {"op": "remove", "path": "/CustomFields/1"},
        {"op": "add", "path": "/CustomFields/-", "value": {"Name": "c", "Value": "3"}},
    ]
    ops, base = prepare(patch, PROFILE_RULES, read)
    assert reads == [1] and base == PROFILE
    # One pin for the array; the idempotent replace is left unpinned.
    assert ops == [{"op": "test", "path": "/CustomFields", "value": PROFILE["CustomFields"]}, *patch]
    # A base the caller already has is used instead of a read.
    assert prepare(patch, PROFILE_RULES, read, base=PROFILE)[0] == ops and reads == [1]


def _offer_resource(doc: dict[str, Any], sent: list[Patch]) -> Resource:
    def send(ops: Patch) -> dict[str, Any]:
        sent.append(ops)
        doc.update(jsonpatch.apply_patch(doc, ops))
        return doc

    return Resource(
        target="offer 'o1'",
        rules=OFFER_RULES,
        read=lambda: copy.deepcopy(doc),
        patch_request=lambda ops: ops,  # the "request" is the operations themselves
        send=send,
        summarize=lambda outcome, _doc: outcome,
    )


def test_plan_change_returns_the_guarded_ops_and_sent_change_sends_exactly_them() -> None:
    doc, sent = copy.deepcopy(OFFER), list[Patch]()
    resource = _offer_resource(doc, sent)
    planned = plan_change(resource, patch=APPEND)
    assert planned.base == OFFER
    assert planned.ops == [{"op": "test", "path": "/labels", "value": ["a"]}, *APPEND]
    assert sent_change(resource, planned).outcome.status == "applied"
    assert sent == [planned.ops] and doc["labels"] == ["a", "x"]


class FakeService:
    """A document behind scripted sends for :func:`send_exactly_once`, counting sends and reads."""

    def resource(self, send: Callable[[Patch], Any]) -> Resource:
        """This document as a resource whose PATCHes go to ``send``."""
        return Resource(
            target="offer 'o1'",
            rules=OFFER_RULES,
            read=self.read,
            patch_request=lambda ops: ops,
            send=send,
            summarize=lambda outcome, _doc: outcome,
        )

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.sends = 0
        self.reads = 0

    def apply(self, ops: Patch) -> None:
        self.doc = jsonpatch.apply_patch(self.doc, ops)

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return copy.deepcopy(self.doc)


def uncertain() -> OutcomeUnknownError:
    return OutcomeUnknownError("PATCH offer 'o1': ReadTimeout after the request was sent; it may have been applied")


def refused(status: int = 400) -> Exception:
    cls = BadRequestError if status == 400 else ConflictError
    return cls(status=status, method="PATCH", url="http://x", vendor_message="test failed", action="PATCH offer 'o1'")


def test_a_resend_refused_because_the_late_first_copy_landed_is_reconciled_as_applied() -> None:
    ops, base = prepare(APPEND, OFFER_RULES, lambda: copy.deepcopy(OFFER))
    service = FakeService(copy.deepcopy(OFFER))

    def send(_ops: Patch) -> Any:
        service.sends += 1
        if service.sends == 1:
            raise uncertain()  # timed out; the request is still held up in the service
        service.apply(ops)  # ... and lands now, just before the resend
        try:
            service.apply(ops)
        except jsonpatch.JsonPatchTestFailed:
            raise refused() from None
        raise AssertionError("the resend must have been refused by its guard")

    result = send_exactly_once(service.resource(send), PlannedChange(ops=ops, base=base))
    assert result.reconciled and result.resends == 1 and service.sends == 2
    assert service.doc["labels"] == ["a", "x"]


def test_an_unguarded_append_is_never_resent_after_an_uncertain_outcome() -> None:
    service = FakeService(copy.deepcopy(OFFER))
    sends: list[int] = []

    def send(_ops: Patch) -> Any:
        sends.append(1)
        raise uncertain()

    with pytest.raises(OutcomeUnknownError, match=r"not resent.*To check: .*/labels/-"):
        send_exactly_once(service.resource(send), PlannedChange(ops=APPEND, base=OFFER))
    assert sends == [1] and service.reads == 1


def test_a_refused_patch_that_is_not_in_place_is_a_concurrent_modification() -> None:
    ops, base = prepare(APPEND, OFFER_RULES, lambda: copy.deepcopy(OFFER))
    service = FakeService({**OFFER, "labels": ["theirs"]})

    def send(_ops: Patch) -> Any:
        raise refused(409)

    with pytest.raises(ConcurrentModificationError, match="test of /labels"):
        send_exactly_once(service.resource(send), PlannedChange(ops=ops, base=base))


def test_a_checkpointed_plan_resent_after_it_landed_is_applied_once(connections: Any) -> None:
    """A task retry resends the planned ops it recorded; the guard makes the second copy a no-op."""
    for hook, resource, count in (
        (OfferLibraryHook(), OfferLibraryHook().offer("fallbackOffer1234"), lambda d: d["labels"].count("once")),
        (
            MyPreferencesHook(),
            MyPreferencesHook().profile("Ada@Example.com", "Email"),
            lambda d: [f["Name"] for f in d["CustomFields"]].count("once"),
        ),
    ):
        value: Any = "once" if isinstance(hook, OfferLibraryHook) else {"Name": "once", "Value": "1"}
        path = "/labels/-" if isinstance(hook, OfferLibraryHook) else "/CustomFields/-"
        planned = plan_change(resource, patch=[{"op": "add", "path": path, "value": value}])
        first: ChangeOutcome = sent_change(resource, planned).outcome
        retry: ChangeOutcome = sent_change(resource, planned).outcome  # the same recorded ops, sent again
        assert (first.status, first.reconciled) == ("applied", False)
        assert (retry.status, retry.reconciled) == ("applied", True)
        assert count(resource.read()) == 1
        hook.close()
    patches = [(e["route"], e["status"], e["changed"]) for e in connections.state.journal() if "patch" in e["route"]]
    assert patches == [
        ("offer.patch", 200, True),
        ("offer.patch", 400, None),  # Adobe refuses a failed test with a 400
        ("profile.patch", 200, True),
        ("profile.patch", 409, None),  # MyPreferences with a 409
    ]
