"""JSON Patch handling shared by both services: validate, plan from a desired state, guard, preview.

RFC 6902 parsing and application are ``jsonpatch``'s job; this module adds what the two vendor APIs
require on top (op allow-lists, read-only paths, descending array removes) so that a bad patch is
rejected on the worker with a message naming the operation, before anything is sent.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

from airflow_provider_prefs.errors import InvalidInputError, PatchValidationError, quoted, shorten
from airflow_provider_prefs.jsonvalue import check_json_value, parse_json_text

Patch = list[dict[str, Any]]

_MEMBERS_REQUIRED = {"add": ("value",), "replace": ("value",), "test": ("value",), "copy": ("from",), "move": ("from",)}


@dataclass(frozen=True)
class PatchRules:
    """What one API accepts in a JSON Patch body."""

    resource: str
    allowed_ops: frozenset[str]
    read_only: frozenset[str]
    descending_removes: bool = False
    #: JSON type of top-level fields the vendor documents (``boolean``, ``string``, ``object``...).
    field_types: Mapping[str, str] = field(default_factory=dict)
    #: Arrays whose elements must be objects with these members (``CustomFields``: Name, Value).
    item_members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def is_read_only(self, pointer: str) -> bool:
        """True when ``pointer`` is a read-only top-level field or lies below one."""
        tokens = _tokens(pointer)
        return bool(tokens) and tokens[0] in self.read_only

    def strip_read_only(self, document: dict[str, Any]) -> dict[str, Any]:
        """The part of a document a patch may change (read-only fields dropped)."""
        return {key: value for key, value in document.items() if key not in self.read_only}


OFFER_RULES = PatchRules(
    resource="Offer Library fallback offer",
    allowed_ops=frozenset({"add", "replace", "remove", "copy", "test"}),
    read_only=frozenset(
        {
            "id",
            "datasetId",
            "sandboxId",
            "etag",
            "createdDate",
            "lastModifiedDate",
            "createdBy",
            "lastModifiedBy",
            "createdByClientId",
            "lastModifiedByClientId",
        }
    ),
)

PROFILE_RULES = PatchRules(
    resource="MyPreferences profile",
    allowed_ops=frozenset({"add", "replace", "remove", "test"}),
    read_only=frozenset({"ProfileId", "Edited", "UpdateStatus"}),
    descending_removes=True,
    # The vendor's profile schema (api-notes.md); ProfileId is read-only, so never patched.
    field_types={
        "IsActive": "boolean",
        "RegistrationConfirmed": "boolean",
        "CustomerType": "string",
        "PreserveConsents": "boolean",
        "PreservePreferences": "boolean",
        "CustomerName": "object",
        "DefaultLocale": "string",
        "CustomFields": "array",
    },
    item_members={"CustomFields": ("Name", "Value")},
)


def json_type(value: Any) -> str:
    """The JSON type name of a Python value (``integer`` and ``number`` kept apart, bool is not a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _same_kind(expected: str, actual: str) -> bool:
    return expected == actual or {expected, actual} == {"number", "integer"}


def schema_problem(tokens: list[str], value: Any, rules: PatchRules) -> str | None:
    """Why ``value`` cannot be stored at ``tokens`` under the vendor's schema, or None."""
    if not tokens:
        return None
    name = tokens[0]
    members = rules.item_members.get(name)
    if len(tokens) == 1:
        expected = rules.field_types.get(name)
        if expected and not _same_kind(expected, json_type(value)):
            return f"/{name} must be {_a(expected)} in a {rules.resource}, got {_a(json_type(value))}"
        if members and isinstance(value, list):
            for index, item in enumerate(value):
                if (problem := _item_problem(name, index, item, members)) is not None:
                    return problem
        return None
    if members and len(tokens) == 2:
        return _item_problem(name, tokens[1], value, members)
    return None


def _item_problem(array: str, index: Any, item: Any, members: tuple[str, ...]) -> str | None:
    if isinstance(item, dict) and all(member in item for member in members):
        return None
    shape = "{" + ", ".join(f'"{m}": ...' for m in members) + "}"
    return f"elements of /{array} must be objects like {shape}; /{array}/{index} is {_a(json_type(item))}"


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _tokens(pointer: str) -> list[str]:
    return list(jsonpointer.JsonPointer(pointer).parts)


def _pointer(tokens: Iterable[str]) -> str:
    return jsonpointer.JsonPointer.from_parts(list(tokens)).path


def describe_op(index: int, op: Any) -> str:
    """``operation [2] (move /b)``: how errors name an operation."""
    if isinstance(op, dict):
        return f"operation [{index}] ({shorten(str(op.get('op')), 20)} {shorten(str(op.get('path')))})"
    return f"operation [{index}]"


def parse_patch(patch: Any) -> Patch:
    """Accept a list of operations or its JSON text; check RFC 6902 structure and JSON values.

    The one check of patch content both explicit patches and planned ones go through.
    """
    if isinstance(patch, str | bytes):
        patch = parse_json_text(patch, "patch", PatchValidationError)
    if not isinstance(patch, list):
        raise PatchValidationError(
            f'a JSON Patch must be a list of operations like [{{"op": "replace", "path": "/x", '
            f'"value": 1}}], got {_a(json_type(patch)) if _is_json_kind(patch) else type(patch).__name__}'
        )
    if not patch:
        raise PatchValidationError("patch is empty: there is nothing to send; give at least one operation")
    for index, op in enumerate(patch):
        if not isinstance(op, dict):
            raise PatchValidationError(
                f'{describe_op(index, op)} is not an object: each operation is {{"op", "path", ...}}',
                op_index=index,
            )
        try:
            check_json_value(op.get("value"), str(op.get("path", "")))
            check_json_value({k: v for k, v in op.items() if k != "value"}, "", what="member")
        except InvalidInputError as exc:
            raise PatchValidationError(f"{describe_op(index, op)}: {exc}", op_index=index) from None
        try:
            jsonpatch.JsonPatch([op])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise PatchValidationError(
                f"{describe_op(index, op)} is invalid: {shorten(str(exc), 200)}", op_index=index
            ) from exc
        for member in _MEMBERS_REQUIRED.get(op["op"], ()):
            if member not in op:
                raise PatchValidationError(
                    f"{describe_op(index, op)} is invalid: '{op['op']}' needs a '{member}' member",
                    op_index=index,
                )
        _check_end_of_array_tokens(index, op)
    return [dict(op) for op in patch]


def _is_json_kind(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _check_end_of_array_tokens(index: int, op: dict[str, Any]) -> None:
    """RFC 6901/6902: ``-`` (past the end of an array) is only a target, the last token of an add's path.

    ``remove /CustomFields/-`` or ``from: /labels/-`` point at nothing; the services answer 400.
    """
    pointers = [("path", op["path"])] + ([("from", op["from"])] if "from" in op else [])
    for member, pointer in pointers:
        tokens = _tokens(pointer)
        for position, token in enumerate(tokens):
            is_target = member == "path" and op["op"] in ("add", "copy", "move") and position == len(tokens) - 1
            if token == "-" and not is_target:
                raise PatchValidationError(
                    f"{describe_op(index, op)}: '-' in {member} {shorten(pointer)} means 'past the end of the "
                    f"array', which only an add (or copy/move target) can use; to {op['op']} the last element, "
                    "give its index (e.g. /CustomFields/3)",
                    op_index=index,
                )


def validate_patch(patch: Any, rules: PatchRules) -> Patch:
    """Parse and check a patch against one API's rules; return it as a list of dicts.

    Raises :class:`PatchValidationError` naming the first offending operation.
    """
    ops = parse_patch(patch)
    for index, op in enumerate(ops):
        name = op["op"]
        if name not in rules.allowed_ops:
            raise PatchValidationError(
                f"{describe_op(index, op)}: '{name}' is not allowed for a {rules.resource}; "
                f"allowed ops: {', '.join(sorted(rules.allowed_ops))}",
                op_index=index,
            )
        if op["path"] == "" and name != "test":
            raise PatchValidationError(
                f"{describe_op(index, op)}: replacing the whole document would overwrite read-only fields",
                op_index=index,
            )
        if rules.is_read_only(op["path"]):
            raise PatchValidationError(
                f"{describe_op(index, op)}: {shorten(op['path'])} is read-only in a {rules.resource}; "
                "remove this operation",
                op_index=index,
            )
        if name in ("add", "replace") and (wrong := schema_problem(_tokens(op["path"]), op["value"], rules)):
            raise PatchValidationError(f"{describe_op(index, op)}: {wrong}", op_index=index)
    if rules.descending_removes:
        problem = first_misordered_remove(ops)
        if problem is not None:
            index, array, previous, current = problem
            raise PatchValidationError(
                f"{describe_op(index, ops[index])}: removes from {array} must come in descending index "
                f"order, but index {current} follows index {previous}",
                op_index=index,
            )
    return ops


def _array_element(pointer: str) -> tuple[str, int] | None:
    tokens = _tokens(pointer)
    if tokens and tokens[-1].isdigit():
        return _pointer(tokens[:-1]), int(tokens[-1])
    return None


def first_misordered_remove(ops: Patch) -> tuple[int, str, int, int] | None:
    """The first remove that breaks descending order within its array, as (op index, array, prev, idx)."""
    last_index: dict[str, int] = {}
    for index, op in enumerate(ops):
        if op["op"] != "remove" or (element := _array_element(op["path"])) is None:
            continue
        array, position = element
        if array in last_index and position >= last_index[array]:
            return index, array, last_index[array], position
        last_index[array] = position
    return None


def touches_array_position(op: dict[str, Any]) -> bool:
    """True for ops whose effect depends on array positions (applying them twice is not harmless)."""
    if op["op"] in ("copy", "move"):
        return True
    if op["op"] in ("test", "replace"):
        return False
    tokens = _tokens(op["path"])
    return bool(tokens) and (tokens[-1] == "-" or tokens[-1].isdigit())


def is_guarded(ops: Patch) -> bool:
    """True when every changed path is covered by a ``test`` op on it or on an ancestor.

    Resending a guarded patch is safe: if the first send was applied, the guard fails instead of
    applying the change twice.
    """
    tested = [_tokens(op["path"]) for op in ops if op["op"] == "test"]
    if not tested:
        return False
    for op in ops:
        if op["op"] == "test":
            continue
        targets = [op["path"]] + ([op["from"]] if op["op"] == "move" else [])
        for target in targets:
            tokens = _tokens(target)
            if not any(tokens[: len(guard)] == guard for guard in tested):
                return False
    return True


def apply_patch(document: dict[str, Any], ops: Patch) -> dict[str, Any]:
    """Apply with ``jsonpatch`` to a copy; raise :class:`PatchValidationError` if it cannot apply."""
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(document, ops, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchValidationError(f"patch does not apply to the current document: {shorten(str(exc), 200)}") from exc
    return result


def merge_desired(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The target document: ``desired`` applied to ``current`` as a JSON Merge Patch (RFC 7396).

    Objects merge recursively, ``None`` removes a field, anything else (lists too) replaces.
    """
    result = copy.deepcopy(current)
    for key, value in desired.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_desired(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def validate_desired(desired: Any, rules: PatchRules) -> dict[str, Any]:
    """Check a desired state before anything is read: an object of JSON values, no read-only field,
    top-level types as the vendor's schema says. Returns it parsed (it may arrive as JSON text)."""
    if isinstance(desired, str | bytes):
        desired = parse_json_text(desired, "desired", PatchValidationError)
    if not isinstance(desired, dict):
        shown = _a(json_type(desired)) if _is_json_kind(desired) else f"a Python {type(desired).__name__}"
        raise PatchValidationError(
            f'desired state must be an object of the fields you want (e.g. {{"name": "x"}}), got {shown}'
        )
    try:
        check_json_value(desired, "", what="desired state: value")
    except InvalidInputError as exc:
        raise PatchValidationError(str(exc)) from None
    read_only = sorted(key for key in desired if key in rules.read_only)
    if read_only:
        raise PatchValidationError(
            f"desired state sets {', '.join('/' + shorten(k) for k in read_only)}, read-only in a {rules.resource} "
            f"(the service sets it); leave it out of desired. Read-only: {', '.join(sorted(rules.read_only))}"
        )
    for key, value in desired.items():
        if value is not None and (problem := schema_problem([key], value, rules)):
            raise PatchValidationError(f"desired state: {problem}")
    return desired


def plan_patch(current: dict[str, Any], desired: Any, rules: PatchRules, *, allow_type_changes: bool = False) -> Patch:
    """The minimal, guarded patch that turns ``current`` into ``desired`` (empty when equal).

    ``jsonpatch`` computes the difference; it is then rewritten into what the API accepts (no
    move/copy where forbidden, removes in descending order) and prefixed with ``test`` ops on the
    values it was computed from, so a concurrent change fails the patch instead of being overwritten.
    A value whose JSON type differs from the current one (a list becoming a string) is refused
    unless ``allow_type_changes``: it is far more often a mistake than an intent.
    """
    desired = validate_desired(desired, rules)
    base = rules.strip_read_only(current)
    target = merge_desired(base, desired)
    ops: Patch = list(jsonpatch.make_patch(base, target).patch)
    if not ops:
        return []
    if not allow_type_changes:
        _refuse_type_changes(base, ops, rules)
    ops = _without_forbidden_moves(base, ops, rules)
    if rules.descending_removes:
        ops = _with_ordered_removes(ops, target)
    guarded = pin_values(base, ops) + ops
    return validate_patch(guarded, rules)


def _refuse_type_changes(base: dict[str, Any], ops: Patch, rules: PatchRules) -> None:
    for op in ops:
        if op["op"] != "replace":
            continue
        old = jsonpointer.resolve_pointer(base, op["path"], default=None)
        old_type, new_type = json_type(old), json_type(op["value"])
        if old is not None and not _same_kind(old_type, new_type):
            raise PatchValidationError(
                f"desired state changes {shorten(op['path'])} of the {rules.resource} from {_a(old_type)} "
                f"to {_a(new_type)} ({quoted(op['value'])}); if that is intended, pass allow_type_changes=True"
            )


def _without_forbidden_moves(base: dict[str, Any], ops: Patch, rules: PatchRules) -> Patch:
    rewritten: Patch = []
    working = copy.deepcopy(base)
    for op in ops:
        replacement = [op]
        if op["op"] in ("move", "copy") and op["op"] not in rules.allowed_ops:
            value = jsonpointer.resolve_pointer(working, op["from"])
            replacement = [{"op": "add", "path": op["path"], "value": copy.deepcopy(value)}]
            if op["op"] == "move":
                replacement.insert(0, {"op": "remove", "path": op["from"]})
        for new_op in replacement:
            working = jsonpatch.apply_patch(working, [new_op], in_place=True)
            rewritten.append(new_op)
    return rewritten


def _with_ordered_removes(ops: Patch, target: dict[str, Any]) -> Patch:
    """Fix remove order; an array whose changes cannot be ordered is replaced whole instead."""
    ops = _reorder_remove_runs(ops)
    while (problem := first_misordered_remove(ops)) is not None:
        array = problem[1]
        array_tokens = _tokens(array)
        inside = [i for i, op in enumerate(ops) if _is_below(_tokens(op["path"]), array_tokens)]
        replacement = {"op": "replace", "path": array, "value": jsonpointer.resolve_pointer(target, array)}
        ops = [op for i, op in enumerate(ops) if i not in inside]
        ops.insert(min(inside), replacement)
    return ops


def _is_below(tokens: list[str], ancestor: list[str]) -> bool:
    return len(tokens) > len(ancestor) and tokens[: len(ancestor)] == ancestor


def _reorder_remove_runs(ops: Patch) -> Patch:
    """Rewrite each run of consecutive removes from one array into descending original indices."""
    result: Patch = []
    i = 0
    while i < len(ops):
        element = _array_element(ops[i]["path"]) if ops[i]["op"] == "remove" else None
        if element is None:
            result.append(ops[i])
            i += 1
            continue
        array = element[0]
        run_end = i
        while (
            run_end < len(ops)
            and ops[run_end]["op"] == "remove"
            and (el := _array_element(ops[run_end]["path"])) is not None
            and el[0] == array
        ):
            run_end += 1
        positions = [_array_element(op["path"])[1] for op in ops[i:run_end]]  # type: ignore[index]
        remaining = list(range(max(positions) + len(positions) + 1))
        originals = [remaining.pop(position) for position in positions]
        array_tokens = _tokens(array)
        result.extend(
            {"op": "remove", "path": _pointer([*array_tokens, str(original)])}
            for original in sorted(originals, reverse=True)
        )
        i = run_end
    return result


def _guard_pointer(base: dict[str, Any], pointer: str) -> str | None:
    """The nearest existing value that pins the state ``pointer``'s op relies on."""
    tokens = _tokens(pointer)
    while tokens:
        parent = jsonpointer.resolve_pointer(base, _pointer(tokens[:-1]), default=None)
        if isinstance(parent, list):
            return _pointer(tokens[:-1]) if len(tokens) > 1 else None
        if isinstance(parent, dict) and tokens[-1] in parent:
            return _pointer(tokens)
        tokens = tokens[:-1]
    return None


def pin_values(base: dict[str, Any], ops: Patch) -> Patch:
    """``test`` ops pinning, in ``base``, the values ``ops`` change (arrays whole, nested pins merged).

    An op on an array element pins the whole array; an op on an object member pins that member, or
    its nearest existing ancestor when it is new. Nothing is pinned for a new top-level member.
    """
    pointers: list[str] = []
    for op in ops:
        for target in [op["path"]] + ([op["from"]] if op["op"] in ("move",) else []):
            pointer = _guard_pointer(base, target)
            if pointer and pointer not in pointers:
                pointers.append(pointer)
    token_lists = [_tokens(p) for p in pointers]
    kept = [
        p
        for p, tokens in zip(pointers, token_lists, strict=True)
        if not any(other != tokens and tokens[: len(other)] == other for other in token_lists)
    ]
    return [{"op": "test", "path": p, "value": copy.deepcopy(jsonpointer.resolve_pointer(base, p))} for p in kept]


def render_preview(before: dict[str, Any], ops: Patch, rules: PatchRules) -> str:
    """A readable dry-run report: the patch, then a unified diff of the document it would produce."""
    after = apply_patch(before, ops)
    lines = [f"{len(ops)} operation(s):"]
    lines += [f"  {json.dumps(op, sort_keys=True)}" for op in ops]
    old = json.dumps(rules.strip_read_only(before), indent=2, sort_keys=True).splitlines()
    new = json.dumps(rules.strip_read_only(after), indent=2, sort_keys=True).splitlines()
    diff = list(difflib.unified_diff(old, new, "current", "after patch", lineterm=""))
    lines += diff or ["(document unchanged)"]
    return "\n".join(lines)
