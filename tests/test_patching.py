"""Patch validation, desired-state planning and exactly-once judgement (pure, no server)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from airflow_provider_prefs.errors import PatchValidationError
from airflow_provider_prefs.patching.guards import resend_safe
from airflow_provider_prefs.patching.rules import (
    OFFER_RULES,
    PROFILE_RULES,
    first_misordered_remove,
    is_guarded,
    plan_patch,
    render_preview,
    validate_patch,
)
from airflow_provider_prefs.patching.verdicts import Verdict, judge

OFFER: dict[str, Any] = {
    "id": "o1",
    "etag": 3,
    "lastModifiedDate": "2024-01-01T00:00:00.000Z",
    "name": "Old",
    "description": "d",
    "status": "approved",
    "labels": ["a"],
    "representations": [{"channel": "web", "placement": "p1", "components": [{"type": "text", "content": "hi"}]}],
}
PROFILE: dict[str, Any] = {
    "ProfileId": 7,
    "UpdateStatus": "Complete",
    "Edited": {"Date": "x", "By": "y"},
    "IsActive": True,
    "CustomerName": {"FirstName": "Ada", "LastName": "Lovelace"},
    "CustomFields": [
        {"Name": "a", "Value": "1"},
        {"Name": "b", "Value": "2"},
        {"Name": "c", "Value": "3"},
        {"Name": "d", "Value": "4"},
    ],
}

SAMPLE_OPS = {
    "add": {"op": "add", "path": "/labels/-", "value": "x"},
    "replace": {"op": "replace", "path": "/name", "value": "New"},
    "remove": {"op": "remove", "path": "/description"},
    "copy": {"op": "copy", "from": "/name", "path": "/description"},
    "move": {"op": "move", "from": "/name", "path": "/description"},
    "test": {"op": "test", "path": "/name", "value": "Old"},
}


@pytest.mark.parametrize("name", ["add", "replace", "remove", "copy", "test"])
def test_offer_allows(name: str) -> None:
    assert validate_patch([SAMPLE_OPS[name]], OFFER_RULES) == [SAMPLE_OPS[name]]


@pytest.mark.parametrize("name", ["add", "replace", "remove", "test"])
def test_profile_allows(name: str) -> None:
    assert validate_patch([SAMPLE_OPS[name]], PROFILE_RULES)


@pytest.mark.parametrize(("rules", "name"), [(OFFER_RULES, "move"), (PROFILE_RULES, "move"), (PROFILE_RULES, "copy")])
def test_forbidden_ops_name_the_operation(rules: Any, name: str) -> None:
    patch = [SAMPLE_OPS["replace"], SAMPLE_OPS[name]]
    with pytest.raises(PatchValidationError) as info:
        validate_patch(patch, rules)
    assert info.value.op_index == 1
    assert f"operation [1] ({name} /description): '{name}' is not allowed" in str(info.value)


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ('[{"op": "replace", "path": "/name", "value": "x"', "not valid JSON"),
        ({"op": "replace"}, "must be a list"),
        ([], "patch is empty"),
        ([{"op": "frobnicate", "path": "/name"}], "operation [0] (frobnicate /name) is invalid"),
        ([{"op": "replace", "path": "/name"}], "needs a 'value' member"),
        ([{"op": "replace", "path": "name", "value": 1}], "is invalid"),
        (["replace"], "is not an object"),
        ([{"op": "replace", "path": "/etag", "value": 9}], "/etag is read-only"),
        ([{"op": "remove", "path": "/lastModifiedDate"}], "read-only"),
        ([{"op": "replace", "path": "", "value": {}}], "whole document"),
    ],
)
def test_bad_offer_patches(patch: Any, fragment: str) -> None:
    with pytest.raises(PatchValidationError) as info:
        validate_patch(patch, OFFER_RULES)
    assert fragment in str(info.value)


@pytest.mark.parametrize("path", ["/ProfileId", "/Edited/Date", "/UpdateStatus"])
def test_profile_read_only_paths(path: str) -> None:
    with pytest.raises(PatchValidationError, match="read-only"):
        validate_patch([{"op": "replace", "path": path, "value": 1}], PROFILE_RULES)


def test_profile_removes_must_descend() -> None:
    good = [{"op": "remove", "path": "/CustomFields/2"}, {"op": "remove", "path": "/CustomFields/0"}]
    assert validate_patch(good, PROFILE_RULES) == good
    bad = list(reversed(good))
    with pytest.raises(PatchValidationError, match="descending index order, but index 2 follows index 0"):
        validate_patch(bad, PROFILE_RULES)
    # Offers have no such rule, and removes from different arrays do not interfere.
    assert validate_patch(bad, OFFER_RULES)
    assert first_misordered_remove([{"op": "remove", "path": "/a/0"}, {"op": "remove", "path": "/b/1"}]) is None


def test_desired_state_minimal_guarded_patch() -> None:
    ops = plan_patch(OFFER, {"name": "New", "description": "d"}, OFFER_RULES)
    assert ops == [
        {"op": "test", "path": "/name", "value": "Old"},
        {"op": "replace", "path": "/name", "value": "New"},
    ]
    assert jsonpatch.apply_patch(OFFER, ops)["name"] == "New"


def test_desired_state_no_difference_is_empty() -> None:
    assert plan_patch(OFFER, {"name": "Old", "labels": ["a"]}, OFFER_RULES) == []


def test_desired_state_rejects_read_only_fields() -> None:
    with pytest.raises(PatchValidationError, match="/etag"):
        plan_patch(OFFER, {"etag": 9}, OFFER_RULES)


def test_desired_state_null_removes_a_field() -> None:
    ops = plan_patch(OFFER, {"description": None}, OFFER_RULES)
    assert {"op": "remove", "path": "/description"} in ops
    assert "description" not in jsonpatch.apply_patch(OFFER, ops)


def test_desired_profile_array_removals_are_descending_and_allowed() -> None:
    fields = PROFILE["CustomFields"]
    desired = {"CustomFields": [fields[1], fields[3]]}
    ops = plan_patch(PROFILE, desired, PROFILE_RULES)
    assert all(op["op"] in PROFILE_RULES.allowed_ops for op in ops)
    removes = [int(op["path"].rsplit("/", 1)[1]) for op in ops if op["op"] == "remove"]
    assert removes == sorted(removes, reverse=True)
    assert jsonpatch.apply_patch(PROFILE, ops)["CustomFields"] == desired["CustomFields"]
    assert ops[0] == {"op": "test", "path": "/CustomFields", "value": fields}


@pytest.mark.parametrize(
    "new_fields",
    [
        lambda f: [f[3], f[0], f[1], f[2]],  # jsonpatch would produce a move
        lambda f: [f[2], {"Name": "z", "Value": "9"}],
        lambda f: [f[0], f[0], f[1]],  # jsonpatch would produce a copy-like add
        lambda f: [],
    ],
)
def test_desired_profile_never_uses_move_or_copy_and_always_converges(new_fields: Any) -> None:
    desired = {"CustomFields": new_fields(copy.deepcopy(PROFILE["CustomFields"]))}
    ops = plan_patch(PROFILE, desired, PROFILE_RULES)
    validate_patch(ops, PROFILE_RULES)
    assert not {op["op"] for op in ops} & {"move", "copy"}
    assert jsonpatch.apply_patch(PROFILE, ops)["CustomFields"] == desired["CustomFields"]


def test_guard_detects_a_concurrent_change() -> None:
    ops = plan_patch(OFFER, {"name": "New"}, OFFER_RULES)
    changed = {**OFFER, "name": "Changed by someone else"}
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(changed, ops)
    assert is_guarded(ops)


def test_preview_shows_a_diff() -> None:
    text = render_preview(OFFER, [{"op": "replace", "path": "/name", "value": "New"}], OFFER_RULES)
    assert '-  "name": "Old",' in text and '+  "name": "New",' in text and "1 operation(s)" in text


def test_preview_fails_clearly_when_the_patch_does_not_apply() -> None:
    with pytest.raises(PatchValidationError, match="does not apply"):
        render_preview(OFFER, [{"op": "remove", "path": "/nope"}], OFFER_RULES)


APPEND = [{"op": "add", "path": "/labels/-", "value": "x"}]
RENAME = [{"op": "replace", "path": "/name", "value": "New"}]


def test_judge_with_base_uses_etag() -> None:
    after = {**jsonpatch.apply_patch(OFFER, APPEND), "etag": 4}
    assert judge(APPEND, OFFER, OFFER_RULES, base=OFFER, version_key="etag")[0] is Verdict.NOT_APPLIED
    assert judge(APPEND, after, OFFER_RULES, base=OFFER, version_key="etag")[0] is Verdict.APPLIED
    other = {**OFFER, "etag": 4, "name": "Someone else"}
    assert judge(APPEND, other, OFFER_RULES, base=OFFER, version_key="etag")[0] is Verdict.UNKNOWN


def test_judge_without_base_for_idempotent_patches() -> None:
    assert judge(RENAME, OFFER, OFFER_RULES)[0] is Verdict.NOT_APPLIED
    assert judge(RENAME, {**OFFER, "name": "New"}, OFFER_RULES)[0] is Verdict.APPLIED


def test_judge_guarded_patches() -> None:
    guarded: list[dict[str, Any]] = [{"op": "test", "path": "/labels", "value": ["a"]}, *APPEND]
    assert judge(guarded, OFFER, OFFER_RULES)[0] is Verdict.NOT_APPLIED
    applied = jsonpatch.apply_patch(OFFER, guarded)
    assert judge(guarded, applied, OFFER_RULES)[0] is Verdict.APPLIED
    assert judge(guarded, {**OFFER, "labels": ["zzz"]}, OFFER_RULES)[0] is Verdict.UNKNOWN


def test_unguarded_appends_need_a_base_and_are_unknown_without_one() -> None:
    assert not resend_safe(APPEND) and resend_safe(RENAME)
    assert resend_safe([{"op": "test", "path": "/labels", "value": ["a"]}, *APPEND])
    assert judge(APPEND, OFFER, OFFER_RULES)[0] is Verdict.UNKNOWN
