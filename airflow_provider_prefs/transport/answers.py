"""A successful answer checked against what the API promises, before anything uses it.

A 2xx is not proof of a usable answer: a gateway's HTML page, an empty body, a list where the API returns an
object, a token endpoint answering ``"expires_in": "soon"``. Each becomes an
:class:`~airflow_provider_prefs.errors.UnexpectedAnswerError` saying what was expected and what came (bounded,
redacted), never a JSON, pydantic, Key or Value error from deeper down. Models declare what they expect with
an ``EXPECTED`` class variable, and the fields never to quote with ``SECRET_FIELDS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_provider_prefs.errors import UnexpectedAnswerError, quoted, shorten, vendor_message

#: How many field problems of a wrong-shape answer are listed.
MAX_PROBLEMS = 3


def describe(value: Any) -> str:
    """What a JSON value is, for a message: its type and, for an object, its first keys (never values)."""
    if isinstance(value, dict):
        keys = ", ".join(shorten(str(key), 30) for key in list(value)[:8])
        return f"a JSON object with keys {keys}" + (" ..." if len(value) > 8 else "") if value else "an empty object"
    if isinstance(value, list):
        return f"a JSON array of {len(value):,} item(s)"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    return "JSON null"


def parse_json(body: bytes, content_type: str, expected: str, redact: Callable[[str], str]) -> Any:
    """The JSON of ``body``; an :class:`UnexpectedAnswerError` naming ``expected`` when it is empty or not JSON."""
    if not body.strip():
        raise UnexpectedAnswerError(f"expected {expected}, got an empty body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        html = "html" in content_type.lower() or body.lstrip()[:1] == b"<"
        kind = "an HTML page" if html else "a body that is not JSON"
        excerpt = redact(vendor_message(redact(body.decode("utf-8", "replace"))))
        media = f" ({shorten(content_type, 60)})" if content_type else ""
        raise UnexpectedAnswerError(f"expected {expected}, got {kind}{media}: {excerpt}") from None


def check_shape(model: type[BaseModel], value: Any, redact: Callable[[str], str]) -> None:
    """Raise :class:`UnexpectedAnswerError` unless ``value`` validates as ``model``."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        got = redact(describe(value))
        raise UnexpectedAnswerError(
            f"expected {expected_of(model)}, got {got}: {problems(model, exc, redact)}"
        ) from None


def expected_of(model: type[BaseModel]) -> str:
    """How a message names what ``model`` expects."""
    return str(getattr(model, "EXPECTED", f"a JSON object ({model.__name__})"))


def problems(model: type[BaseModel], exc: ValidationError, redact: Callable[[str], str]) -> str:
    """The first field problems of a validation error; values quoted only for fields that are not secret."""
    secret: frozenset[str] = getattr(model, "SECRET_FIELDS", frozenset())
    listed = []
    for error in exc.errors()[:MAX_PROBLEMS]:
        where = redact(shorten(".".join(str(part) for part in error["loc"]), 60)) or "the answer"
        shown = ""
        if error["loc"] and error["loc"][0] not in secret and not isinstance(error.get("input"), dict | list):
            shown = f" (got {redact(quoted(error.get('input'), 40))})"
        listed.append(f"{where}: {error['msg']}{shown}")
    more = len(exc.errors()) - MAX_PROBLEMS
    return "; ".join(listed) + (f"; and {more} more" if more > 0 else "")
