"""JSON Patch handling shared by both services: validate, plan from a desired state, guard, preview.

RFC 6902 parsing and application are ``jsonpatch``'s job; this module adds what the two vendor APIs
require on top (op allow-lists, read-only paths, descending array removes) so that a bad patch is
rejected on the worker with a message naming the operation, before anything is sent.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from airflow_provider_prefs.errors import PatchValidationError

Patch = list[dict[str, Any]]

_MEMBERS_REQUIRED = {"add": ("value",), "replace": ("value",), "test": ("value",), "copy": ("from",), "move": ("from",)}


@dataclass(frozen=True)
class PatchRules:
    """What one API accepts in a JSON Patch body."""

    resource: str
    allowed_ops: frozenset[str]
    read_only: frozenset[str]
    descending_removes: bool = False

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
)


def _tokens(pointer: str) -> list[str]:
    return list(jsonpointer.JsonPointer(pointer).parts)


def _pointer(tokens: Iterable[str]) -> str:
    return jsonpointer.JsonPointer.from_parts(list(tokens)).path


def describe_op(index: int, op: Any) -> str:
    """``operation [2] (move /b)``: how errors name an operation."""
    if isinstance(op, dict):
        return f"operation [{index}] ({op.get('op')} {op.get('path')})"
    return f"operation [{index}]"


def parse_patch(patch: Any) -> Patch:
    """Accept a list of operations or its JSON text; check RFC 6902 structure with ``jsonpatch``."""
    if isinstance(patch, str | bytes):
        try:
            patch = json.loads(patch)
        except ValueError as exc:
            raise PatchValidationError(f"patch is not valid JSON: {exc}") from exc
    if not isinstance(patch, list):
        raise PatchValidationError(f"a JSON Patch must be a list of operations, got {type(patch).__name__}")
    if not patch:
        raise PatchValidationError("patch is empty: there is nothing to send")
    for index, op in enumerate(patch):
        if not isinstance(op, dict):
            raise PatchValidationError(f"{describe_op(index, op)} is not an object", op_index=index)
        try:
            jsonpatch.JsonPatch([op])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise PatchValidationError(f"{describe_op(index, op)} is invalid: {exc}", op_index=index) from exc
        for member in _MEMBERS_REQUIRED.get(op["op"], ()):
            if member not in op:
                raise PatchValidationError(
                    f"{describe_op(index, op)} is invalid: '{op['op']}' needs a '{member}' member",
                    op_index=index,
                )
    return [dict(op) for op in patch]


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
                f"{describe_op(index, op)}: {op['path']} is read-only in a {rules.resource}", op_index=index
            )
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
        raise PatchValidationError(f"patch does not apply to the current document: {exc}") from exc
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


def plan_patch(current: dict[str, Any], desired: dict[str, Any], rules: PatchRules) -> Patch:
    """The minimal, guarded patch that turns ``current`` into ``desired`` (empty when equal).

    ``jsonpatch`` computes the difference; it is then rewritten into what the API accepts (no
    move/copy where forbidden, removes in descending order) and prefixed with ``test`` ops on the
    values it was computed from, so a concurrent change fails the patch instead of being overwritten.
    """
    if not isinstance(desired, dict):
        raise PatchValidationError(f"desired state must be an object, got {type(desired).__name__}")
    for key in desired:
        if key in rules.read_only:
            raise PatchValidationError(f"desired state sets /{key}, which is read-only in a {rules.resource}")
    base = rules.strip_read_only(current)
    target = merge_desired(base, desired)
    ops: Patch = list(jsonpatch.make_patch(base, target).patch)
    if not ops:
        return []
    ops = _without_forbidden_moves(base, ops, rules)
    if rules.descending_removes:
        ops = _with_ordered_removes(ops, target)
    guarded = pin_values(base, ops) + ops
    return validate_patch(guarded, rules)


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
