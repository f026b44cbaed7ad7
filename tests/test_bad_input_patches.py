"""Bad-input corpus, patch content and arguments: every way a patch, a desired state, an id or a wait
argument can be wrong, through both patch operators, both hooks and the sensor (issue #12).

Each row says what the user does, the error they must get, what its message must name (the field
or path, and the fix) and how many requests the sandbox may see: zero for everything that can be
judged on the worker. :func:`corpus.check` also asserts no secret is in the message and its size.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException
from corpus import BadInput, check, check_offline

from airflow_provider_prefs.errors import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidInputError,
    NotFoundError,
    PatchValidationError,
    PrefsError,
    RequestTooLargeError,
)
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.operators import FallbackOfferPatchOperator, ProfilePatchOperator
from airflow_provider_prefs.sandbox import connections as creds
from airflow_provider_prefs.sensors.profile_status import ProfileUpdateStatusSensor

OFFER = "fallbackOffer1234"
ADA: dict[str, Any] = {"alternate_id": "Ada@Example.com", "alternate_id_type": "Email"}
#: Token + GET: what a desired state costs before anything can be compared with the current document.
TOKEN_AND_GET = 2


def run(operator: Any) -> Any:
    """Execute a task as the worker would; a failed task's cause is re-raised, so rows check its precise type.

    Only ``AirflowFailException`` is unwrapped: bad input must fail the task without burning retries.
    """
    try:
        return operator.execute({})
    except AirflowFailException as failed:
        if isinstance(failed.__cause__, PrefsError):
            assert str(failed) == str(failed.__cause__)
            raise failed.__cause__ from None
        raise


def offer_task(**kwargs: Any) -> Callable[[Any], Any]:
    """Act: run a FallbackOfferPatchOperator (``kwargs`` may be a factory to build big values lazily)."""
    return lambda _sandbox: run(FallbackOfferPatchOperator(task_id="patch_offer", **{"offer_id": OFFER, **kwargs}))


def profile_task(**kwargs: Any) -> Callable[[Any], Any]:
    """Act: run a ProfilePatchOperator on Ada's profile unless the row says otherwise."""
    return lambda _sandbox: run(ProfilePatchOperator(task_id="patch_profile", **{**ADA, **kwargs}))


def lazy(make: Callable[[], Any]) -> Callable[[Any], Any]:
    """Act built when the row runs (deep or huge values are not kept around at collection)."""
    return lambda _sandbox: make()


def nested_dicts(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def replace(path: str, value: Any) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": path, "value": value}]


NAN, INF = float("nan"), float("inf")
BIG = 20 * 1024 * 1024  # 20 MB

CASES: list[BadInput] = [
    # ----- values that are not JSON: offers ------------------------------------------------------
    BadInput(
        "offer-nan-literal",
        offer_task(patch=replace("/name", NAN)),
        PatchValidationError,
        ("value at /name is not valid JSON (NaN", "finite number"),
    ),
    BadInput(
        "offer-infinity-literal",
        offer_task(patch=replace("/description", INF)),
        PatchValidationError,
        ("value at /description is not valid JSON (Infinity", "finite number"),
    ),
    BadInput(
        "offer-neg-infinity-nested",
        offer_task(patch=[{"op": "add", "path": "/labels/-", "value": {"w": [1, -INF]}}]),
        PatchValidationError,
        ("value at /labels/-/w/1 is not valid JSON (-Infinity",),
    ),
    BadInput(
        "offer-nan-templated-text",
        offer_task(patch='[{"op": "replace", "path": "/name", "value": NaN}]'),
        PatchValidationError,
        ("patch is not valid JSON (NaN", "finite number"),
    ),
    BadInput(
        "offer-infinity-templated-text",
        offer_task(patch='[{"op": "test", "path": "/etag", "value": Infinity}]'),
        PatchValidationError,
        ("patch is not valid JSON (Infinity",),
    ),
    BadInput(
        "offer-desired-nan",
        offer_task(desired={"name": NAN}),
        PatchValidationError,
        ("desired state: value at /name is not valid JSON (NaN", "finite number"),
    ),
    BadInput(
        "offer-desired-nan-templated",
        offer_task(desired='{"description": NaN}'),
        PatchValidationError,
        ("desired is not valid JSON (NaN",),
    ),
    BadInput(
        "offer-datetime",
        offer_task(patch=replace("/description", dt.datetime(2026, 1, 1, 12))),
        PatchValidationError,
        ("value at /description is not valid JSON", "datetime", ".isoformat()"),
    ),
    BadInput(
        "offer-date-in-list",
        offer_task(patch=[{"op": "add", "path": "/labels/-", "value": [dt.date(2026, 1, 1)]}]),
        PatchValidationError,
        ("value at /labels/-/0", "date", ".isoformat()"),
    ),
    BadInput(
        "offer-bytes",
        offer_task(patch=replace("/name", b"Spring")),
        PatchValidationError,
        ("value at /name", "bytes", "decode it"),
    ),
    BadInput(
        "offer-set",
        offer_task(patch=replace("/labels", {"a", "b"})),
        PatchValidationError,
        ("value at /labels", "set", "sorted list"),
    ),
    BadInput(
        "offer-tuple",
        offer_task(patch=replace("/labels", ("a", "b"))),
        PatchValidationError,
        ("value at /labels", "tuple", "use a list"),
    ),
    BadInput(
        "offer-int-key",
        offer_task(patch=replace("/representations/0", {1: "x"})),
        PatchValidationError,
        ("/representations/0", "keys must be strings"),
    ),
    BadInput(
        "offer-desired-datetime",
        offer_task(desired={"description": dt.datetime(2026, 1, 1)}),
        PatchValidationError,
        ("value at /description", "datetime", ".isoformat()"),
    ),
    BadInput(
        "offer-desired-set-nested",
        offer_task(desired={"representations": [{"tags": {"x"}}]}),
        PatchValidationError,
        ("value at /representations/0/tags", "set"),
    ),
    # ----- too deep, too big ----------------------------------------------------------------------
    # Airflow walks template fields recursively when the task is created: caught there, by name.
    BadInput(
        "offer-3000-dicts-deep",
        lazy(
            lambda: FallbackOfferPatchOperator(
                task_id="t", offer_id=OFFER, patch=replace("/description", nested_dicts(3000))
            )
        ),
        InvalidArgumentError,
        ("patch=", "nested more than 100 levels", "flatten"),
    ),
    BadInput(
        "offer-100000-lists-deep",
        lazy(
            lambda: FallbackOfferPatchOperator(
                task_id="t", offer_id=OFFER, patch=[{"op": "add", "path": "/labels/-", "value": nested_lists(100_000)}]
            )
        ),
        InvalidArgumentError,
        ("patch=", "nested more than 100 levels", "flatten"),
    ),
    BadInput(
        "offer-100000-lists-deep-text",
        lazy(lambda: run(FallbackOfferPatchOperator(task_id="t", offer_id=OFFER, patch="[" * 100_000 + "]" * 100_000))),
        PatchValidationError,
        ("patch is nested too deeply", "flatten"),
    ),
    BadInput(
        "offer-desired-3000-dicts-deep",
        lazy(
            lambda: FallbackOfferPatchOperator(task_id="t", offer_id=OFFER, desired={"description": nested_dicts(3000)})
        ),
        InvalidArgumentError,
        ("desired=", "nested more than 100 levels"),
    ),
    BadInput(
        "offer-20mb-value",
        lazy(
            lambda: run(
                FallbackOfferPatchOperator(task_id="t", offer_id=OFFER, patch=replace("/description", "x" * BIG))
            )
        ),
        RequestTooLargeError,
        ("offer 'fallbackOffer1234'", "max_request_bytes=1,048,576", "nothing was sent"),
    ),
    BadInput(
        "offer-20mb-desired",
        lazy(lambda: run(FallbackOfferPatchOperator(task_id="t", offer_id=OFFER, desired={"description": "x" * BIG}))),
        RequestTooLargeError,
        ("desired state", "max_request_bytes", "raise max_request_bytes"),
    ),
    # ----- ids ------------------------------------------------------------------------------------
    BadInput(
        "offer-id-dot",
        offer_task(offer_id=".", patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id '.'", "dot segment", "give the real id"),
    ),
    BadInput(
        "offer-id-dotdot",
        offer_task(offer_id="..", patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id '..'", "dot segment"),
    ),
    BadInput(
        "offer-id-dotdot-desired",
        offer_task(offer_id="..", desired={"name": "x"}),
        InvalidInputError,
        ("offer_id '..'", "dot segment"),
    ),
    BadInput(
        "offer-id-100kb",
        offer_task(offer_id="o" * 100_000, patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id is 100,000 characters long", "limit 1,024", "template"),
    ),
    BadInput(
        "offer-id-empty",
        offer_task(offer_id="", patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id must be a non-empty string",),
    ),
    BadInput(
        "offer-id-blank",
        offer_task(offer_id="   ", patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id must be a non-empty string",),
    ),
    BadInput(
        "offer-id-int",
        offer_task(offer_id=1234, patch=replace("/name", "x")),
        InvalidInputError,
        ("offer_id must be a non-empty string", "1234"),
    ),
    # ----- desired state: read-only, shape, types -------------------------------------------------
    BadInput(
        "offer-desired-id",
        offer_task(desired={"id": "other"}),
        PatchValidationError,
        ("/id", "read-only", "leave it out of desired"),
    ),
    BadInput(
        "offer-desired-etag", offer_task(desired={"etag": 9, "name": "x"}), PatchValidationError, ("/etag", "read-only")
    ),
    BadInput(
        "offer-desired-metadata",
        offer_task(desired={"lastModifiedDate": None, "createdBy": "me"}),
        PatchValidationError,
        ("/createdBy", "/lastModifiedDate", "read-only"),
    ),
    BadInput(
        "offer-desired-list",
        offer_task(desired=[{"name": "x"}]),
        PatchValidationError,
        ("desired state must be an object", "got an array"),
    ),
    BadInput(
        "offer-desired-json-string",
        offer_task(desired='"Spring"'),
        PatchValidationError,
        ("desired state must be an object", "got a string"),
    ),
    BadInput(
        "offer-desired-not-json-text",
        offer_task(desired="{name: Spring}"),
        PatchValidationError,
        ("desired is not valid JSON",),
    ),
    BadInput(
        "offer-desired-type-change",
        offer_task(desired={"description": 5}),
        PatchValidationError,
        ("/description", "from a string to an integer", "allow_type_changes=True"),
        requests=TOKEN_AND_GET,
    ),
    BadInput(
        "offer-desired-list-to-string",
        offer_task(desired={"labels": "none"}),
        PatchValidationError,
        ("/labels", "from an array to a string", "allow_type_changes=True"),
        requests=TOKEN_AND_GET,
    ),
    # ----- explicit patches: structure and the Offer Library's rules -------------------------------
    BadInput(
        "offer-move-forbidden",
        offer_task(patch=[{"op": "move", "from": "/name", "path": "/description"}]),
        PatchValidationError,
        ("operation [0] (move /description)", "not allowed", "allowed ops: add"),
    ),
    BadInput(
        "offer-remove-dash",
        offer_task(patch=[{"op": "remove", "path": "/labels/-"}]),
        PatchValidationError,
        ("remove /labels/-", "past the end", "give its index"),
    ),
    BadInput(
        "offer-replace-dash",
        offer_task(patch=replace("/labels/-", "x")),
        PatchValidationError,
        ("replace /labels/-", "only an add"),
    ),
    BadInput(
        "offer-test-dash",
        offer_task(patch=[{"op": "test", "path": "/labels/-", "value": "x"}]),
        PatchValidationError,
        ("test /labels/-", "give its index"),
    ),
    BadInput(
        "offer-copy-from-dash",
        offer_task(patch=[{"op": "copy", "from": "/labels/-", "path": "/name"}]),
        PatchValidationError,
        ("from /labels/-", "give its index"),
    ),
    BadInput(
        "offer-dash-mid-path",
        offer_task(patch=[{"op": "add", "path": "/labels/-/x", "value": 1}]),
        PatchValidationError,
        ("path /labels/-/x", "past the end"),
    ),
    BadInput(
        "offer-dash-second-op",
        offer_task(patch=[replace("/name", "x")[0], {"op": "remove", "path": "/representations/-"}]),
        PatchValidationError,
        ("operation [1] (remove /representations/-)",),
    ),
    BadInput(
        "offer-path-no-slash",
        offer_task(patch=replace("name", "x")),
        PatchValidationError,
        ("operation [0] (replace name)", "invalid"),
    ),
    BadInput(
        "offer-unknown-op",
        offer_task(patch=[{"op": "merge", "path": "/name", "value": "x"}]),
        PatchValidationError,
        ("operation [0] (merge /name)", "invalid"),
    ),
    BadInput(
        "offer-add-without-value",
        offer_task(patch=[{"op": "add", "path": "/labels/-"}]),
        PatchValidationError,
        ("operation [0] (add /labels/-)", "needs a 'value' member"),
    ),
    BadInput(
        "offer-copy-without-from",
        offer_task(patch=[{"op": "copy", "path": "/name"}]),
        PatchValidationError,
        ("operation [0] (copy /name)", "'from'"),
    ),
    BadInput(
        "offer-op-not-object",
        offer_task(patch=["replace /name x"]),
        PatchValidationError,
        ("operation [0] is not an object", '"op", "path"'),
    ),
    BadInput(
        "offer-patch-is-object",
        offer_task(patch={"op": "replace", "path": "/name", "value": "x"}),
        PatchValidationError,
        ("must be a list of operations", "got an object"),
    ),
    BadInput(
        "offer-patch-empty", offer_task(patch=[]), PatchValidationError, ("patch is empty", "at least one operation")
    ),
    BadInput(
        "offer-patch-not-json-text",
        offer_task(patch="replace /name Spring"),
        PatchValidationError,
        ("patch is not valid JSON",),
    ),
    BadInput(
        "offer-replace-root",
        offer_task(patch=replace("", {"name": "x"})),
        PatchValidationError,
        ("operation [0]", "whole document", "read-only"),
    ),
    BadInput(
        "offer-replace-etag",
        offer_task(patch=replace("/etag", 7)),
        PatchValidationError,
        ("/etag is read-only", "remove this operation"),
    ),
    BadInput(
        "offer-remove-created-date",
        offer_task(patch=[{"op": "remove", "path": "/createdDate"}]),
        PatchValidationError,
        ("/createdDate is read-only",),
    ),
    BadInput(
        "offer-path-datetime",
        offer_task(patch=[{"op": "remove", "path": dt.date(2026, 1, 1)}]),
        PatchValidationError,
        ("member at /path is not valid JSON", "date"),
    ),
    # ----- operator arguments: at task creation -------------------------------------------------
    BadInput(
        "offer-patch-and-desired",
        lazy(
            lambda: FallbackOfferPatchOperator(
                task_id="t", offer_id=OFFER, patch=replace("/name", "x"), desired={"name": "x"}
            )
        ),
        InvalidArgumentError,
        ("exactly one of patch= or desired=", "got both"),
    ),
    BadInput(
        "offer-neither",
        lazy(lambda: FallbackOfferPatchOperator(task_id="t", offer_id=OFFER)),
        InvalidArgumentError,
        ("exactly one of patch= or desired=", "got neither"),
    ),
    # ----- profiles: values, ids, desired -------------------------------------------------------
    BadInput(
        "profile-nan",
        profile_task(patch=replace("/DefaultLocale", NAN)),
        PatchValidationError,
        ("value at /DefaultLocale is not valid JSON (NaN",),
    ),
    BadInput(
        "profile-nan-in-custom-field",
        profile_task(patch=[{"op": "add", "path": "/CustomFields/-", "value": {"Name": "Score", "Value": NAN}}]),
        PatchValidationError,
        ("value at /CustomFields/-/Value is not valid JSON (NaN",),
    ),
    BadInput(
        "profile-desired-infinity",
        profile_task(desired={"CustomerName": {"FirstName": INF}}),
        PatchValidationError,
        ("value at /CustomerName/FirstName is not valid JSON (Infinity",),
    ),
    BadInput(
        "profile-desired-date",
        profile_task(desired={"CustomFields": [{"Name": "Since", "Value": dt.date(2020, 1, 1)}]}),
        PatchValidationError,
        ("value at /CustomFields/0/Value", "date", ".isoformat()"),
    ),
    BadInput(
        "profile-bytes",
        profile_task(patch=replace("/CustomerType", b"Retail")),
        PatchValidationError,
        ("value at /CustomerType", "bytes"),
    ),
    BadInput(
        "profile-100000-lists-deep",
        lazy(
            lambda: ProfilePatchOperator(
                task_id="t", **ADA, patch=replace("/CustomerName", {"deep": nested_lists(100_000)})
            )
        ),
        InvalidArgumentError,
        ("ProfilePatchOperator patch=", "nested more than 100 levels"),
    ),
    BadInput(
        "profile-desired-deep-text",
        profile_task(desired='{"CustomerName": ' + "[" * 50_000 + "]" * 50_000 + "}"),
        PatchValidationError,
        ("desired is nested too deeply", "flatten"),
    ),
    BadInput(
        "profile-20mb-value",
        lazy(
            lambda: run(
                ProfilePatchOperator(task_id="t", **ADA, patch=replace("/CustomerName", {"FirstName": "x" * BIG}))
            )
        ),
        RequestTooLargeError,
        ("profile Email:'Ada@Example.com'", "max_request_bytes", "nothing was sent"),
    ),
    BadInput(
        "profile-remove-dash",
        profile_task(patch=[{"op": "remove", "path": "/CustomFields/-"}]),
        PatchValidationError,
        ("remove /CustomFields/-", "past the end", "e.g. /CustomFields/3"),
    ),
    BadInput(
        "profile-move-forbidden",
        profile_task(patch=[{"op": "move", "from": "/CustomFields/0", "path": "/CustomFields/1"}]),
        PatchValidationError,
        ("'move' is not allowed", "MyPreferences profile", "allowed ops: add"),
    ),
    BadInput(
        "profile-copy-forbidden",
        profile_task(patch=[{"op": "copy", "from": "/DefaultLocale", "path": "/CustomerType"}]),
        PatchValidationError,
        ("'copy' is not allowed", "allowed ops"),
    ),
    BadInput(
        "profile-ascending-removes",
        profile_task(patch=[{"op": "remove", "path": "/CustomFields/0"}, {"op": "remove", "path": "/CustomFields/2"}]),
        PatchValidationError,
        ("/CustomFields", "descending index order"),
    ),
    BadInput(
        "profile-replace-profileid",
        profile_task(patch=replace("/ProfileId", 1)),
        PatchValidationError,
        ("/ProfileId is read-only",),
    ),
    BadInput(
        "profile-replace-updatestatus",
        profile_task(patch=replace("/UpdateStatus", "Complete")),
        PatchValidationError,
        ("/UpdateStatus is read-only",),
    ),
    BadInput(
        "profile-desired-profileid",
        profile_task(desired={"ProfileId": 7}),
        PatchValidationError,
        ("/ProfileId", "read-only", "leave it out of desired"),
    ),
    BadInput(
        "profile-desired-edited",
        profile_task(desired={"Edited": {"By": "me"}}),
        PatchValidationError,
        ("/Edited", "read-only"),
    ),
    BadInput(
        "profile-desired-updatestatus",
        profile_task(desired={"UpdateStatus": None}),
        PatchValidationError,
        ("/UpdateStatus", "read-only"),
    ),
    BadInput(
        "profile-desired-not-object",
        profile_task(desired=["IsActive", False]),
        PatchValidationError,
        ("desired state must be an object", "got an array"),
    ),
    BadInput(
        "profile-desired-customfields-none",
        profile_task(desired={"CustomFields": "none"}),
        PatchValidationError,
        ("/CustomFields must be an array", "got a string"),
    ),
    BadInput(
        "profile-desired-isactive-yes",
        profile_task(desired={"IsActive": "yes"}),
        PatchValidationError,
        ("/IsActive must be a boolean", "got a string"),
    ),
    BadInput(
        "profile-desired-locale-number",
        profile_task(desired={"DefaultLocale": 1033}),
        PatchValidationError,
        ("/DefaultLocale must be a string", "got an integer"),
    ),
    BadInput(
        "profile-desired-customfield-shape",
        profile_task(desired={"CustomFields": [{"Tier": "Gold"}]}),
        PatchValidationError,
        ("elements of /CustomFields must be objects like", '"Name"', "/CustomFields/0"),
    ),
    BadInput(
        "profile-isactive-yes",
        profile_task(patch=replace("/IsActive", "yes")),
        PatchValidationError,
        ("/IsActive must be a boolean",),
    ),
    BadInput(
        "profile-customername-string",
        profile_task(patch=replace("/CustomerName", "Ada Lovelace")),
        PatchValidationError,
        ("/CustomerName must be an object",),
    ),
    BadInput(
        "profile-add-customfield-int",
        profile_task(patch=[{"op": "add", "path": "/CustomFields/-", "value": 5}]),
        PatchValidationError,
        ("elements of /CustomFields must be objects", '"Value"'),
    ),
    BadInput(
        "profile-alternate-id-100kb",
        profile_task(alternate_id="a" * 100_000, patch=replace("/IsActive", True)),
        InvalidInputError,
        ("alternate_id is 100,000 characters long", "limit 1,024"),
    ),
    BadInput(
        "profile-alternate-id-empty",
        profile_task(alternate_id="", patch=replace("/IsActive", True)),
        InvalidInputError,
        ("alternate_id must be a non-empty string",),
    ),
    BadInput(
        "profile-alternate-id-type-none",
        profile_task(alternate_id_type=None, desired={"IsActive": True}),
        InvalidInputError,
        ("alternate_id_type must be a non-empty string", "None"),
    ),
    # ----- profile operator wait arguments: at task creation -------------------------------------
    BadInput(
        "profile-poll-interval-negative",
        lazy(
            lambda: ProfilePatchOperator(
                task_id="t", **ADA, patch=replace("/IsActive", True), wait_for_completion=True, poll_interval=-1
            )
        ),
        InvalidArgumentError,
        ("poll_interval must be a positive number", "-1", "poll_interval=30"),
    ),
    BadInput(
        "profile-poll-interval-zero",
        lazy(lambda: ProfilePatchOperator(task_id="t", **ADA, patch=replace("/IsActive", True), poll_interval=0)),
        InvalidArgumentError,
        ("poll_interval must be a positive number",),
    ),
    BadInput(
        "profile-poll-interval-nan",
        lazy(
            lambda: ProfilePatchOperator(task_id="t", **ADA, patch=replace("/IsActive", True), poll_interval=math.nan)
        ),
        InvalidArgumentError,
        ("poll_interval must be a positive number", "nan"),
    ),
    BadInput(
        "profile-wait-timeout-zero",
        lazy(
            lambda: ProfilePatchOperator(
                task_id="t", **ADA, patch=replace("/IsActive", True), wait_for_completion=True, wait_timeout=0
            )
        ),
        InvalidArgumentError,
        ("wait_timeout must be a positive number", "wait_timeout=30"),
    ),
    BadInput(
        "profile-wait-timeout-negative",
        lazy(lambda: ProfilePatchOperator(task_id="t", **ADA, patch=replace("/IsActive", True), wait_timeout=-5)),
        InvalidArgumentError,
        ("wait_timeout must be a positive number", "-5"),
    ),
    BadInput(
        "profile-wait-timeout-string",
        lazy(lambda: ProfilePatchOperator(task_id="t", **ADA, patch=replace("/IsActive", True), wait_timeout="1h")),  # type: ignore[arg-type]
        InvalidArgumentError,
        ("wait_timeout must be a positive number", "'1h'"),
    ),
    # ----- hooks called directly ------------------------------------------------------------------
    BadInput(
        "offer-hook-nan",
        lazy(lambda: OfferLibraryHook().change_offer(OFFER, patch=replace("/name", NAN))),
        PatchValidationError,
        ("value at /name is not valid JSON (NaN",),
    ),
    BadInput(
        "offer-hook-set",
        lazy(lambda: OfferLibraryHook().change_offer(OFFER, patch=replace("/labels", {"x"}))),
        PatchValidationError,
        ("value at /labels", "set"),
    ),
    BadInput(
        "offer-hook-100000-lists-deep",
        lazy(
            lambda: OfferLibraryHook().change_offer(
                OFFER, patch=[{"op": "add", "path": "/labels/-", "value": nested_lists(100_000)}]
            )
        ),
        PatchValidationError,
        ("value at /labels/-", "nested more than 100 levels", "flatten"),
    ),
    BadInput(
        "offer-hook-get-dotdot",
        lazy(lambda: OfferLibraryHook().get_offer("..")),
        InvalidInputError,
        ("offer_id '..'", "dot segment"),
    ),
    BadInput(
        "offer-hook-patch-dot",
        lazy(lambda: OfferLibraryHook().change_offer(".", patch=replace("/name", "x"))),
        InvalidInputError,
        ("offer_id '.'", "dot segment"),
    ),
    BadInput(
        "offer-hook-20mb-array-append",
        lazy(
            lambda: OfferLibraryHook().change_offer(
                OFFER, patch=[{"op": "add", "path": "/labels/-", "value": "x" * BIG}]
            )
        ),
        RequestTooLargeError,
        ("PATCH offer 'fallbackOffer1234'", "max_request_bytes", "nothing was sent"),
    ),
    BadInput(
        "offer-hook-remove-dash",
        lazy(lambda: OfferLibraryHook().change_offer(OFFER, patch=[{"op": "remove", "path": "/representations/-"}])),
        PatchValidationError,
        ("remove /representations/-", "give its index"),
    ),
    BadInput(
        "profile-hook-remove-dash",
        lazy(
            lambda: MyPreferencesHook().change_profile(
                "Ada@Example.com", "Email", patch=[{"op": "remove", "path": "/CustomFields/-"}]
            )
        ),
        PatchValidationError,
        ("remove /CustomFields/-", "give its index"),
    ),
    BadInput(
        "profile-hook-3000-dicts-deep",
        lazy(
            lambda: MyPreferencesHook().change_profile(
                "Ada@Example.com", "Email", patch=replace("/CustomerName", nested_dicts(3000))
            )
        ),
        PatchValidationError,
        ("/CustomerName", "nested more than 100 levels"),
    ),
    BadInput(
        "profile-hook-datetime-text-ok-but-type",
        lazy(
            lambda: MyPreferencesHook().change_profile(
                "Ada@Example.com", "Email", patch=replace("/RegistrationConfirmed", dt.datetime(2026, 1, 1))
            )
        ),
        PatchValidationError,
        ("value at /RegistrationConfirmed", "datetime"),
    ),
    BadInput(
        "profile-hook-get-100kb-id",
        lazy(lambda: MyPreferencesHook().get_profile("b" * 100_000, "Email")),
        InvalidInputError,
        ("alternate_id is 100,000 characters long",),
    ),
    BadInput(
        "profile-hook-small-request-limit",
        lazy(
            lambda: MyPreferencesHook(transport_overrides={"max_request_bytes": 1000}).change_profile(
                "Ada@Example.com", "Email", patch=replace("/CustomerType", "R" * 2000)
            )
        ),
        RequestTooLargeError,
        ("max_request_bytes=1,000", "raise max_request_bytes"),
    ),
    BadInput(
        "profile-hook-request-limit-zero",
        lazy(
            lambda: MyPreferencesHook(transport_overrides={"max_request_bytes": 0}).change_profile(
                "Ada@Example.com", "Email", patch=replace("/IsActive", True)
            )
        ),
        ConfigurationError,
        ("max_request_bytes", "greater than 0"),
    ),
    # ----- sensor arguments: at task creation ---------------------------------------------------
    BadInput(
        "sensor-timeout-zero",
        lazy(lambda: ProfileUpdateStatusSensor(task_id="s", **ADA, timeout=0)),
        InvalidArgumentError,
        ("ProfileUpdateStatusSensor: timeout must be a positive number", "timeout=30"),
    ),
    BadInput(
        "sensor-timeout-negative",
        lazy(lambda: ProfileUpdateStatusSensor(task_id="s", **ADA, timeout=-1)),
        InvalidArgumentError,
        ("timeout must be a positive number", "-1"),
    ),
    BadInput(
        "sensor-poke-interval-zero",
        lazy(lambda: ProfileUpdateStatusSensor(task_id="s", **ADA, poke_interval=0)),
        InvalidArgumentError,
        ("poke_interval must be a positive number",),
    ),
    BadInput(
        "sensor-poke-interval-negative",
        lazy(lambda: ProfileUpdateStatusSensor(task_id="s", **ADA, poke_interval=-1, deferrable=True)),
        InvalidArgumentError,
        ("poke_interval must be a positive number", "poke_interval=30"),
    ),
    BadInput(
        "sensor-poke-interval-zero-timedelta",
        lazy(lambda: ProfileUpdateStatusSensor(task_id="s", **ADA, poke_interval=dt.timedelta(0))),
        InvalidArgumentError,
        ("poke_interval must be a positive number", "timedelta"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: BadInput, connections: Any) -> None:
    check(case, connections)


#: The rows judged on the worker: nearly all of them.
FREE = [case for case in CASES if case.requests == 0]


@pytest.mark.parametrize("case", FREE, ids=[case.id for case in FREE])
def test_a_mistake_judged_on_the_worker_needs_no_network(case: BadInput, connections: Any) -> None:
    """Refused as well with the network cut: no lookup, no connection, nothing sent on a pooled one."""
    check_offline(case, connections)


# ----- what the corpus cannot express: what happens once the input is right, and the server side ---


def test_type_change_is_applied_when_the_user_opts_in(connections: Any) -> None:
    result = run(
        FallbackOfferPatchOperator(task_id="t", offer_id=OFFER, desired={"labels": "none"}, allow_type_changes=True)
    )
    assert result["status"] == "applied"
    assert connections.state.offer("dev", OFFER)["labels"] == "none"


def test_long_id_is_truncated_in_service_errors(connections: Any) -> None:
    """A 1,000-character id is allowed and sent; the 404 quotes it cut, not twice in full."""
    long_id = "missing-" + "z" * 992
    with pytest.raises(NotFoundError) as caught:
        MyPreferencesHook().get_profile(long_id, "Email")
    message = str(caught.value)
    assert long_id not in message and "(1,000 chars)" in message
    assert len(message) < 1_000 and "HTTP 404" in message


def test_request_limit_is_checked_by_the_client_before_sending(connections: Any) -> None:
    """The client refuses an over-limit body itself, for callers that bypass the hooks' patch methods."""
    from airflow_provider_prefs.transport.client import ApiRequest

    hook = OfferLibraryHook(transport_overrides={"max_request_bytes": 100})
    url = hook.settings.offer_url(OFFER)
    connections.state.clear_journal()
    with pytest.raises(RequestTooLargeError, match="max_request_bytes=100"):
        hook.send(ApiRequest("PATCH", url, action="raw patch", json_body=replace("/name", "n" * 200)))
    assert connections.state.journal() == []


MP_URL_HEADERS = {"Authorization": f"Bearer {creds.MP_STATIC_TOKEN}"}


@pytest.mark.parametrize(
    "patch",
    [
        replace("/IsActive", "yes"),
        replace("/CustomFields", "none"),
        replace("/RegistrationConfirmed", 1),
        replace("/CustomerType", ["Retail"]),
        replace("/CustomerName", "Ada"),
        replace("/PreserveConsents", None),
        [{"op": "add", "path": "/CustomFields/-", "value": 5}],
        [{"op": "add", "path": "/CustomFields/-", "value": {"Value": "no name"}}],
    ],
    ids=lambda patch: f"{patch[0]['path']}={json.dumps(patch[0]['value'])}",
)
def test_sandbox_refuses_wrong_profile_field_types(sandbox: Any, patch: list[dict[str, Any]]) -> None:
    """The sandbox validates types like the vendor's schema, for any client (raw HTTP here)."""
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    params = {"alternateId": "Ada@Example.com", "alternateIdType": "Email"}
    before = sandbox.state.profile("DEMO", "Ada@Example.com", "Email")
    answer = requests.patch(url, params=params, headers=MP_URL_HEADERS, json=patch, timeout=10)
    assert answer.status_code == 400, answer.text
    assert sandbox.state.profile("DEMO", "Ada@Example.com", "Email") == before


def test_sandbox_refuses_nan_in_a_body(sandbox: Any) -> None:
    """Python's json accepts NaN; the vendors' parsers do not, so neither does the sandbox."""
    url = f"{sandbox.url}/api/v4/DEMO/profiles"
    params = {"alternateId": "Ada@Example.com", "alternateIdType": "Email"}
    body = '[{"op": "replace", "path": "/CustomerType", "value": NaN}]'
    headers = {**MP_URL_HEADERS, "Content-Type": "application/json"}
    answer = requests.patch(url, params=params, headers=headers, data=body, timeout=10)
    assert answer.status_code == 400, answer.text
    assert sandbox.state.profile("DEMO", "Ada@Example.com", "Email")["CustomerType"] == "Retail"
