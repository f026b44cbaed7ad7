"""The JSON value checks accept everything legitimate: the bad-input corpus proves they refuse the rest."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_prefs.errors import InvalidInputError, PatchValidationError, quoted, shorten
from airflow_provider_prefs.jsonvalue import MAX_JSON_DEPTH, check_json_value, encode_json, parse_json_text
from airflow_provider_prefs.patching.rules import (
    OFFER_RULES,
    PROFILE_RULES,
    plan_patch,
    validate_desired,
    validate_patch,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_is_exact() -> None:
    check_json_value(nested(MAX_JSON_DEPTH), "/x")
    with pytest.raises(InvalidInputError, match="nested more than"):
        check_json_value(nested(MAX_JSON_DEPTH + 1), "/x")


@pytest.mark.parametrize("value", [None, True, 0, -1.5, 1e308, "é", [], {}, {"a": [1, {"b": None}]}])
def test_plain_json_values_pass(value: Any) -> None:
    check_json_value(value, "/v")
    assert encode_json(value, limit=1_000, what="x")


def test_pointer_of_the_bad_part_is_escaped() -> None:
    with pytest.raises(InvalidInputError, match=r"value at /a~1b/c~0d is not valid JSON \(NaN"):
        check_json_value({"a/b": {"c~d": float("nan")}}, "")


def test_encode_limit_counts_utf8_bytes() -> None:
    assert len(encode_json("é" * 10, limit=22, what="x")) == 22
    with pytest.raises(InvalidInputError, match="max_request_bytes=21"):
        encode_json("é" * 10, limit=21, what="x")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_text_parsing_refuses_non_standard_constants(constant: str) -> None:
    """Python's json module reads these; the services do not: refused, named, and the fix given."""
    assert parse_json_text('{"a": 1.5}', "x") == {"a": 1.5}
    with pytest.raises(InvalidInputError) as info:
        parse_json_text(f'{{"a": [1, {constant}]}}', "patch")
    message = str(info.value)
    assert message.startswith(f"patch is not valid JSON ({constant};"), message
    assert "use null or a finite number" in message, message


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "/labels/-", "value": "x"},
        {"op": "copy", "from": "/labels/0", "path": "/labels/-"},
        {"op": "add", "path": "/representations/0/components/-", "value": {"type": "t"}},
    ],
)
def test_dash_is_fine_as_an_add_target(op: dict[str, Any]) -> None:
    assert validate_patch([op], OFFER_RULES) == [op]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/IsActive", "value": False},
        {"op": "replace", "path": "/CustomerName", "value": {"FirstName": "A"}},
        {"op": "add", "path": "/CustomFields/-", "value": {"Name": "Tier", "Value": "Gold"}},
        {"op": "replace", "path": "/CustomFields", "value": [{"Name": "Tier", "Value": 3}]},
        {"op": "replace", "path": "/CustomFields/0/Value", "value": 7},
        {"op": "add", "path": "/SomethingNew", "value": "not in the documented schema"},
    ],
)
def test_profile_values_of_the_documented_types_pass(op: dict[str, Any]) -> None:
    assert validate_patch([op], PROFILE_RULES) == [op]


def test_desired_as_json_text_is_parsed_and_checked() -> None:
    assert validate_desired('{"IsActive": false}', PROFILE_RULES) == {"IsActive": False}
    with pytest.raises(PatchValidationError, match="/IsActive must be a boolean"):
        validate_desired('{"IsActive": "false"}', PROFILE_RULES)


def test_int_and_float_are_one_type_for_type_changes() -> None:
    ops = plan_patch({"name": "n", "weight": 1}, {"weight": 1.5}, OFFER_RULES)
    assert {"op": "replace", "path": "/weight", "value": 1.5} in ops


def test_quoting_is_bounded() -> None:
    assert quoted("x" * 5) == "'xxxxx'"
    assert quoted("x" * 100_000).endswith("...(100,000 chars)") and len(quoted("x" * 100_000)) < 110
    assert shorten("y" * 1000, 10) == "yyyyyyyyyy...(1,000 chars)"
    assert quoted({"a": 1}) == "<dict>"
