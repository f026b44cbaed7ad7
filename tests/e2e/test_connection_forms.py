"""The Add Connection form of the Airflow 3 UI, for both connection types, in headless Chromium.

The browser is Debian's ``chromium`` (``make chromium`` installs it) driven by Playwright from pip;
Playwright's own browser download is never used. Screenshots go to ``build/screenshots/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_prefs.provider_info import SERVICE_EXTRAS, UI_FIELD_BEHAVIOUR, conn_fields
from airflow_provider_prefs.sandbox import SandboxServer
from airflow_provider_prefs.sandbox.connections import (
    ADOBE_CLIENT_ID,
    ADOBE_CLIENT_SECRET,
    ADOBE_IMS_ORG,
    ADOBE_SANDBOX_NAME,
    MP_CLIENT_ID,
    MP_STATIC_TOKEN,
)
from e2e.deployment import USERNAME, Deployment
from e2e.paths import SCREENSHOTS
from e2e.runs import Run, watch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def required(schema: dict[str, Any]) -> bool:
    """A field is required when null is not one of its types (that is how Airflow renders the marker)."""
    types = schema.get("type")
    return "null" not in (types if isinstance(types, list) else [types])


def with_default(conn_type: str) -> dict[str, Any]:
    """Extra fields that declare a default, and that default."""
    return {name: f["schema"]["default"] for name, f in conn_fields(conn_type).items() if "default" in f["schema"]}


def wait_for_url(page: Any, pattern: str, error: type[Exception], attempts: int = 3) -> None:
    """``page.wait_for_url``, waiting again when the navigation it watched was replaced by the next one.

    The UI redirects in JavaScript (to the login page, then back), and Chromium reports the superseded
    navigation as ``net::ERR_ABORTED``; the page still has to reach ``pattern`` in the end.
    """
    for attempt in range(attempts):
        try:
            page.wait_for_url(pattern)
            return
        except error as exc:
            if "ERR_ABORTED" not in str(exc) or attempt == attempts - 1:
                raise


@pytest.fixture(scope="module")
def page(deployment: Deployment) -> Iterator[Any]:
    """A signed-in page of the deployment's UI."""
    sync_api = pytest.importorskip("playwright.sync_api")
    assert shutil.which(CHROMIUM), "no chromium: run `make chromium` (apt-get install chromium)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(30_000)
            page.goto(f"{deployment.url}/connections")
            wait_for_url(page, "**/auth/login**", sync_api.Error)
            page.get_by_label("Username").fill(USERNAME)
            page.get_by_label("Password").fill(deployment.password)
            page.get_by_role("button", name="Sign in").click()
            wait_for_url(page, "**/connections", sync_api.Error)
            yield page
        finally:
            browser.close()


def open_form(page: Any, deployment: Deployment, conn_type: str, conn_id: str) -> None:
    """Add Connection, with ``conn_type`` picked from the dropdown by its display name."""
    hook_names = {h["connection_type"]: h["hook_name"] for h in deployment.call("GET", "/ui/connections/hook_meta")}
    page.goto(f"{deployment.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_label("Connection ID").fill(conn_id)
    page.get_by_label("Connection Type").fill(hook_names[conn_type])
    page.get_by_role("option", name=hook_names[conn_type], exact=True).click()
    page.get_by_role("button", name="Extra Fields", exact=True).click()


def extra_field(page: Any, name: str) -> Any:
    """The form field (label, input, description) of extra ``name``."""
    return page.locator("[data-scope=field][data-part=root]", has=page.locator(f"input[name=element_{name}]"))


def check_extra_fields(page: Any, conn_type: str) -> list[str]:
    """Labels, required markers, defaults shown, dropdown options, as the provider declares them.

    Returns the mismatches instead of stopping at the first, so the form is still saved and the
    other checks still run.
    """
    problems = []
    for name, field in conn_fields(conn_type).items():
        schema = field["schema"]
        root = extra_field(page, name)
        if root.count() != 1:
            problems.append(f"{conn_type}.{name}: no form field")
            continue
        label = root.locator("label").first.inner_text()
        if field.get("label", name) not in label:
            problems.append(f"{conn_type}.{name}: label {label!r}")
        if ("*" in label) != required(schema):
            problems.append(f"{conn_type}.{name}: required marker wrong in {label!r}")
        shown = root.locator(f"input[name=element_{name}]")
        if "enum" in schema:
            root.locator("input[type=text]").first.click()  # opens the dropdown
            page.get_by_role("option").first.wait_for()
            options = page.get_by_role("option").all_inner_texts()
            if options != schema["enum"]:
                problems.append(f"{conn_type}.{name}: dropdown offers {options}")
            page.get_by_role("option", name=str(schema.get("default", schema["enum"][0])), exact=True).click()
            value = shown.input_value()
        elif "boolean" in str(schema.get("type")):
            value = shown.is_checked()
        else:
            value = shown.input_value()
        expected = schema.get("default", False if "boolean" in str(schema.get("type")) else "")
        if value != (expected if isinstance(expected, bool) else str(expected)):
            problems.append(f"{conn_type}.{name}: form shows {value!r}, the default is {expected!r}")
    return problems


def check_standard_fields(page: Any, conn_type: str) -> list[str]:
    """Relabelled standard fields are shown with their labels; hidden ones are absent."""
    behaviour = UI_FIELD_BEHAVIOUR[conn_type]
    page.get_by_role("button", name="Standard Fields", exact=True).click()
    problems = [
        f"{conn_type}: no field labelled {label!r} ({field})"
        for field, label in behaviour["relabeling"].items()
        if page.get_by_label(label, exact=True).count() != 1
    ]
    hidden = [h for h in behaviour["hidden-fields"] if page.locator(f"input[name={h}]").count()]
    return problems + [f"{conn_type}: {h} shown, should be hidden" for h in hidden]


def save(page: Any, deployment: Deployment, conn_id: str, screenshot: str) -> dict[str, Any]:
    """Click Save, wait until the connection exists, return it as the REST API reads it back."""
    # The screenshot shows the extras (defaults included) as they are about to be saved.
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    page.wait_for_timeout(600)  # the accordion's opening animation
    page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    page.get_by_role("button", name="Save").click()
    deadline = time.monotonic() + 30
    while True:
        found = deployment.api("GET", f"connections?connection_id_pattern={conn_id}")["connections"]
        if any(c["connection_id"] == conn_id for c in found):
            return dict(deployment.api("GET", f"connections/{conn_id}"))
        assert time.monotonic() < deadline, f"{conn_id} not saved"
        time.sleep(0.5)


def fill(page: Any, **inputs: str) -> None:
    """Type into inputs by their ``name`` attribute (extras are ``element_<name>``)."""
    for name, value in inputs.items():
        page.locator(f"input[name={name}]").fill(value)


def assert_defaults_saved(saved: dict[str, Any], conn_type: str, overridden: set[str]) -> None:
    """Every default the form showed is in the saved extra, as the same value, never masked."""
    import json

    extra = json.loads(saved["extra"] or "{}")
    expected = {k: v for k, v in with_default(conn_type).items() if k not in overridden}
    assert {k: extra.get(k) for k in expected} == expected


@pytest.fixture(scope="module")
def forms(page: Any, deployment: Deployment, e2e_sandbox: SandboxServer) -> dict[str, Any]:
    """Both forms checked and saved: required fields, plus only what points them at the sandbox.

    Returns ``{"problems": {conn_type: [...]}, "saved": {name: connection as REST reads it}}``.
    """
    problems: dict[str, list[str]] = {}
    saved = {}
    open_form(page, deployment, "mypreferences", "form_mypreferences")
    problems["mypreferences"] = check_extra_fields(page, "mypreferences")
    fill(page, element_client_id=MP_CLIENT_ID)
    problems["mypreferences"] += check_standard_fields(page, "mypreferences")
    fill(page, host=e2e_sandbox.url, password=MP_STATIC_TOKEN)
    saved["mypreferences"] = save(page, deployment, "form_mypreferences", "connection_form_mypreferences.png")

    # Adobe with nothing but the required fields: every default must be saved as shown.
    open_form(page, deployment, "adobe_offer_library", "form_adobe_defaults")
    problems["adobe_offer_library"] = check_extra_fields(page, "adobe_offer_library")
    fill(page, element_ims_org_id=ADOBE_IMS_ORG, element_sandbox_name=ADOBE_SANDBOX_NAME)
    problems["adobe_offer_library"] += check_standard_fields(page, "adobe_offer_library")
    saved["adobe_defaults"] = save(page, deployment, "form_adobe_defaults", "connection_form_adobe_offer_library.png")

    # The one the DAG uses also points the platform and token URLs at the sandbox.
    open_form(page, deployment, "adobe_offer_library", "form_adobe_offer_library")
    fill(page, element_ims_org_id=ADOBE_IMS_ORG, element_sandbox_name=ADOBE_SANDBOX_NAME)
    fill(page, element_ims_endpoint=f"{e2e_sandbox.url}/ims/token/v3")
    page.get_by_role("button", name="Standard Fields", exact=True).click()
    fill(page, host=f"{e2e_sandbox.url}/data/core/dps", login=ADOBE_CLIENT_ID, password=ADOBE_CLIENT_SECRET)
    saved["adobe"] = save(page, deployment, "form_adobe_offer_library", "connection_form_adobe_filled.png")
    return {"problems": problems, "saved": saved}


@pytest.mark.parametrize("conn_type", sorted(SERVICE_EXTRAS))
def test_form_shows_the_declared_fields(forms: dict[str, Any], conn_type: str) -> None:
    assert forms["problems"][conn_type] == []


def test_defaults_are_saved_unmasked(forms: dict[str, Any]) -> None:
    saved = forms["saved"]
    assert saved["mypreferences"]["conn_type"] == "mypreferences"
    assert saved["adobe_defaults"]["conn_type"] == "adobe_offer_library"
    assert_defaults_saved(saved["mypreferences"], "mypreferences", set())
    assert_defaults_saved(saved["adobe_defaults"], "adobe_offer_library", set())


def test_connections_saved_from_the_form_work_in_a_dag_run(
    forms: dict[str, Any], deployment: Deployment, e2e_sandbox: SandboxServer
) -> None:
    deployment.wait_for_dags(["form_connection_check"])
    answer = deployment.api("POST", "dags/form_connection_check/dagRuns", {"logical_date": None})
    [run] = watch(deployment, [Run("form_connection_check", answer["dag_run_id"], "no logical date")], 120)
    print(f"\n{run.label}")
    assert run.state == "success", run.seen
    profile = e2e_sandbox.state.profile(MP_CLIENT_ID, "grace@example.com", "Email")
    assert profile["CustomerType"] == "Commercial"
    assert e2e_sandbox.state.offer(ADOBE_SANDBOX_NAME, "fallbackOffer1234")["description"].startswith(
        "Saved from the connection form"
    )
