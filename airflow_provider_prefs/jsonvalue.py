"""What may travel as JSON: the one place that checks user values before they become a request body.

Python will happily hold values that are not JSON (``NaN``, ``datetime``, ``set``, ``bytes``) or
that no parser on the other side accepts (a value nested 100,000 levels deep, a 20 MB string). Each
of them used to surface late, as a raw ``TypeError``/``RecursionError`` or, worse, as a request that
never left while the caller believed it might have been applied. Explicit patches and desired
states both pass through :func:`check_json_value`; every JSON body is encoded by :func:`encode_json`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from airflow_provider_prefs.errors import InvalidInputError, RequestTooLargeError, shorten

#: Deepest nesting accepted in a value. Profiles and offers are a handful of levels deep; the
#: limit only has to stay far below Python's recursion limit (copy, jsonpatch and json recurse).
MAX_JSON_DEPTH = 100

#: Default of the ``max_request_bytes`` transport setting: far above any real patch, far below
#: what makes a profile unreadable afterwards (answers are capped by ``max_response_bytes``).
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _type_problem(value: Any) -> str | None:
    """Why one scalar/container is not JSON, or None when it is."""
    if isinstance(value, float) and not math.isfinite(value):
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return f"{name}; JSON has no NaN or Infinity: use null or a finite number"
    if value is None or isinstance(value, str | bool | int | float | dict | list):
        return None
    hint = {
        "datetime": "; convert it with .isoformat()",
        "date": "; convert it with .isoformat()",
        "bytes": "; decode it to a string",
        "set": "; use a sorted list",
        "frozenset": "; use a sorted list",
        "tuple": "; use a list",
        "Decimal": "; convert it to int, float or str",
    }.get(type(value).__name__, "")
    return f"a Python {type(value).__name__}{hint}"


def check_json_value(value: Any, where: str, *, what: str = "value") -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is plain, finite, bounded-depth JSON.

    ``where`` is the JSON Pointer the value will land at (``/CustomFields/0``); the message names the
    exact pointer of the offending part, e.g. ``value at /CustomFields/0/Value is not valid JSON (NaN)``.
    Iterative, so a 100,000-level list is rejected instead of exhausting the stack.
    """
    pending: list[tuple[Any, str, int]] = [(value, where, 0)]
    while pending:
        item, pointer, depth = pending.pop()
        problem = _type_problem(item)
        if problem is not None:
            raise InvalidInputError(f"{what} at {shorten(pointer or '/')} is not valid JSON ({problem})")
        if isinstance(item, dict | list) and depth >= MAX_JSON_DEPTH:
            raise InvalidInputError(
                f"{what} at {shorten(where or '/')} is nested more than {MAX_JSON_DEPTH} levels deep; "
                "neither service accepts documents that deep: flatten it"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"{what} at {shorten(pointer or '/')} has a key of type {type(key).__name__} "
                        f"({shorten(repr(key))}); JSON object keys must be strings"
                    )
                pending.append((child, f"{pointer}/{_escape(key)}", depth + 1))
        elif isinstance(item, list):
            pending.extend((child, f"{pointer}/{index}", depth + 1) for index, child in enumerate(item))


def check_depth(value: Any, where: str, *, what: str = "value") -> None:
    """Only the nesting limit of :func:`check_json_value`, for values that may still hold non-JSON
    placeholders (an operator argument can contain XComArgs; Airflow walks it recursively at once)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        if depth >= MAX_JSON_DEPTH:
            raise InvalidInputError(
                f"{what} {where} is nested more than {MAX_JSON_DEPTH} levels deep; neither service accepts "
                "documents that deep: flatten it"
            )
        pending.extend((child, depth + 1) for child in children)


def parse_json_text(text: str | bytes, what: str, error: type[InvalidInputError] = InvalidInputError) -> Any:
    """JSON text (e.g. a rendered template) to a value; ``NaN``/``Infinity`` and deep nesting refused."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _NonStandardConstant as exc:
        raise error(
            f"{what} is not valid JSON ({exc.args[0]}; JSON has no NaN or Infinity: use null or a finite number)"
        ) from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to parse (limit {MAX_JSON_DEPTH} levels): flatten it") from None
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {shorten(str(exc), 200)}") from exc


class _NonStandardConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonStandardConstant(name)


def encode_json(value: Any, *, limit: int, what: str) -> bytes:
    """The compact UTF-8 body for ``value``; :class:`RequestTooLargeError` when over ``limit`` bytes.

    ``allow_nan=False`` is the last line of defence: a non-finite number never leaves, even from a
    caller that skipped :func:`check_json_value`.
    """
    try:
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what}: the body is not valid JSON ({shorten(str(exc), 200)})") from None
    if len(body) > limit:
        raise RequestTooLargeError(
            f"{what}: the request body is {len(body):,} bytes, over max_request_bytes={limit:,}; nothing was "
            "sent. Split the change, or raise max_request_bytes in the connection extras (or the task's "
            "transport=) if the service really accepts bodies that large"
        )
    return body
