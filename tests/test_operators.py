"""The two patch operators against the sandbox: validation, desired state, guards, dry run, XCom."""

from __future__ import annotations

import dataclasses
import itertools
import json
from functools import cached_property
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import journal

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.operators import FallbackOfferPatchOperator, ProfilePatchOperator
from airflow_provider_prefs.patching.changes import MAX_REPLANS

ADA: dict[str, Any] = {"alternate_id": "Ada@Example.com", "alternate_id_type": "Email"}


def offer_op(**kwargs: Any) -> FallbackOfferPatchOperator:
    return FallbackOfferPatchOperator(task_id="patch_offer", offer_id="fallbackOffer1234", **kwargs)


def profile_op(**kwargs: Any) -> ProfilePatchOperator:
    return ProfilePatchOperator(task_id="patch_profile", **ADA, **kwargs)


def test_offer_patch_applies_and_returns_plain_json(connections: Any) -> None:
    before = OfferLibraryHook().get_offer("fallbackOffer1234")
    result = offer_op(patch=[{"op": "replace", "path": "/name", "value": "Spring"}]).execute({})
    assert json.loads(json.dumps(result)) == result
    assert result["status"] == "applied" and result["operations"] == 1
    assert result["offer"]["id"] == "fallbackOffer1234" and result["offer"]["etag"] == before["etag"] + 1
    assert connections.state.offer("dev", "fallbackOffer1234")["name"] == "Spring"
    assert len(journal(connections, "offer.patch")) == 1


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "/labels/-", "value": "winter"},
        {"op": "replace", "path": "/description", "value": "new"},
        {"op": "remove", "path": "/description"},
        {"op": "copy", "from": "/name", "path": "/description"},
        {"op": "test", "path": "/status", "value": "approved"},
    ],
)
def test_each_allowed_offer_op_is_accepted_by_the_service(connections: Any, op: dict[str, Any]) -> None:
    result = offer_op(patch=[op]).execute({})
    assert result["status"] == "applied"
    assert [e["status"] for e in journal(connections, "offer.patch")] == [200]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "/CustomFields/-", "value": {"Name": "x", "Value": "y"}},
        {"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"},
        {"op": "remove", "path": "/CustomFields/0"},
        {"op": "test", "path": "/IsActive", "value": True},
    ],
)
def test_each_allowed_profile_op_is_accepted_by_the_service(connections: Any, op: dict[str, Any]) -> None:
    result = profile_op(patch=[op]).execute({})
    assert result["status"] == "applied" and result["profile"]["UpdateStatus"] == "Pending Update"
    assert [e["status"] for e in journal(connections, "profile.patch")] == [200]


@pytest.mark.parametrize(
    ("make", "op", "fragment"),
    [
        (offer_op, {"op": "move", "from": "/name", "path": "/description"}, "'move' is not allowed"),
        (profile_op, {"op": "move", "from": "/DefaultLocale", "path": "/CustomerType"}, "'move' is not allowed"),
        (profile_op, {"op": "copy", "from": "/DefaultLocale", "path": "/CustomerType"}, "'copy' is not allowed"),
        (offer_op, {"op": "replace", "path": "/etag", "value": 1}, "/etag is read-only"),
        (profile_op, {"op": "replace", "path": "/UpdateStatus", "value": "Complete"}, "read-only"),
    ],
)
def test_forbidden_ops_fail_the_task_before_any_request(connections: Any, make: Any, op: Any, fragment: str) -> None:
    with pytest.raises(AirflowFailException, match=fragment):
        make(patch=[{"op": "test", "path": "/name", "value": "x"}, op]).execute({})
    assert connections.state.journal() == []


def test_profile_removes_out_of_order_are_rejected_locally(connections: Any) -> None:
    patch = [{"op": "remove", "path": "/CustomFields/0"}, {"op": "remove", "path": "/CustomFields/1"}]
    with pytest.raises(AirflowFailException, match="descending index order"):
        profile_op(patch=patch).execute({})
    assert connections.state.journal() == []


def test_desired_state_sends_the_minimal_guarded_patch(connections: Any) -> None:
    current = OfferLibraryHook().get_offer("fallbackOffer1234")
    result = offer_op(desired={"name": "Desired name", "description": current["description"]}).execute({})
    assert result["status"] == "applied" and result["operations"] == 2
    [sent] = [e["body"] for e in journal(connections, "offer.patch")]
    assert sent == [
        {"op": "test", "path": "/name", "value": current["name"]},
        {"op": "replace", "path": "/name", "value": "Desired name"},
    ]


def test_desired_state_already_matching_sends_nothing(connections: Any, capsys: pytest.CaptureFixture[str]) -> None:
    current = OfferLibraryHook().get_offer("fallbackOffer1234")
    result = offer_op(desired={"name": current["name"]}).execute({})
    assert result["status"] == "unchanged" and result["operations"] == 0
    assert journal(connections, "offer.patch") == []
    assert "already up to date" in capsys.readouterr().out


def test_desired_profile_state_with_array_removals(connections: Any) -> None:
    current = MyPreferencesHook().get_profile(**ADA)
    keep = current["CustomFields"][1:2]
    result = profile_op(desired={"CustomFields": keep, "DefaultLocale": "de-DE"}).execute({})
    assert result["status"] == "applied"
    after = connections.state.profile("DEMO", "Ada@Example.com", "Email")
    assert after["CustomFields"] == keep and after["DefaultLocale"] == "de-DE"


class RacingOfferHook(OfferLibraryHook):
    """Someone else renames the offer between each of our reads and our patch (to a new name each time)."""

    renames = 1

    def offer(self, offer_id: str) -> Any:
        resource = super().offer(offer_id)
        names = itertools.count()

        def read_then_race() -> dict[str, Any]:
            current = resource.read()
            if self.renames:
                self.renames -= 1
                rename = [{"op": "replace", "path": "/name", "value": f"Theirs {next(names)}"}]
                OfferLibraryHook().change_offer(offer_id, patch=rename)
            return current

        return dataclasses.replace(resource, read=read_then_race)


class RacingOfferOperator(FallbackOfferPatchOperator):
    """The operator, through the racing hook (operators make their change through their hook)."""

    renames = 1

    @cached_property
    def hook(self) -> RacingOfferHook:
        hook = RacingOfferHook(self.conn_id)
        hook.renames = self.renames
        return hook


def test_a_desired_state_is_planned_again_after_a_concurrent_change(connections: Any) -> None:
    op = RacingOfferOperator(task_id="race", offer_id="fallbackOffer1234", desired={"name": "Ours"})
    result = op.execute({})
    assert (result["status"], result["replans"]) == ("applied", 1)
    assert connections.state.offer("dev", "fallbackOffer1234")["name"] == "Ours"
    patches = [e["status"] for e in connections.state.journal() if e["route"] == "offer.patch"]
    assert patches == [200, 400, 200]  # theirs, ours refused by its guard, ours planned again


def test_a_resource_that_keeps_changing_fails_after_bounded_replans(connections: Any) -> None:
    op = RacingOfferOperator(task_id="race", offer_id="fallbackOffer1234", desired={"name": "Ours"})
    op.renames = MAX_REPLANS + 10
    with pytest.raises(
        AirflowFailException, match=rf"changed since the patch was planned.*planned {MAX_REPLANS + 1} times"
    ):
        op.execute({})
    assert connections.state.offer("dev", "fallbackOffer1234")["name"].startswith("Theirs")


def test_dry_run_sends_no_change_and_logs_a_diff(connections: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = offer_op(patch=[{"op": "replace", "path": "/name", "value": "Preview"}], dry_run=True).execute({})
    assert result["status"] == "dry_run"
    assert journal(connections, "offer.patch") == []
    assert [e["method"] for e in connections.state.journal() if e["route"].startswith("offer")] == ["GET"]
    assert '+  "name": "Preview",' in capsys.readouterr().out
    assert connections.state.offer("dev", "fallbackOffer1234")["name"] != "Preview"


def test_patch_as_json_text_from_a_template(connections: Any) -> None:
    result = offer_op(patch='[{"op": "replace", "path": "/name", "value": "From JSON"}]').execute({})
    assert result["status"] == "applied"


def test_exactly_one_of_patch_or_desired() -> None:
    with pytest.raises(ValueError, match="exactly one of patch= or desired="):
        offer_op()
    with pytest.raises(ValueError, match="exactly one"):
        offer_op(patch=[], desired={})


def test_templated_arguments_reach_the_service_rendered(connections: Any) -> None:
    """What a DAG author may template (ids, id type, patch, desired, conn_id) is rendered before it is used."""
    context: Any = {  # a Context in Airflow: only the keys these templates use
        "ds": "2026-12-05",
        "params": {
            "offer": "fallbackOffer1234",
            "email": "Ada@Example.com",
            "kind": "Email",
            "locale": "de-DE",
            "adobe": "adobe_offer_library_default",
            "mp": "mypreferences_default",
        },
    }
    offer = FallbackOfferPatchOperator(
        task_id="offer",
        offer_id="{{ params.offer }}",
        conn_id="{{ params.adobe }}",
        patch=[{"op": "replace", "path": "/name", "value": "Offer {{ ds }}"}],
    )
    profile = ProfilePatchOperator(
        task_id="profile",
        alternate_id="{{ params.email }}",
        alternate_id_type="{{ params.kind }}",
        conn_id="{{ params.mp }}",
        desired={"DefaultLocale": "{{ params.locale }}"},
    )
    for task in (offer, profile):
        task.render_template_fields(context)
        assert task.execute({})["status"] == "applied"
    assert connections.state.offer("dev", "fallbackOffer1234")["name"] == "Offer 2026-12-05"
    assert connections.state.profile("DEMO", "Ada@Example.com", "Email")["DefaultLocale"] == "de-DE"


def test_wait_for_completion_on_the_worker(connections: Any) -> None:
    result = profile_op(
        patch=[{"op": "replace", "path": "/DefaultLocale", "value": "it-IT"}],
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
        wait_timeout=10,
    ).execute({})
    assert result["profile"]["UpdateStatus"] == "Complete"
    assert len(journal(connections, "profile.get")) >= 2
