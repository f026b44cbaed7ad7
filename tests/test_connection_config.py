"""Connection forms and extras: one declaration (the transport settings model and ``provider_info``),
shown unmasked, the README tables generated from it, old names still read, and tokens masked without
the masker growing."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from conftest import journal
from helpers import set_connection
from pydantic import BaseModel

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook, MyPreferencesSettings
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook, OfferLibrarySettings
from airflow_provider_prefs.provider_info import (
    ADOBE_CONN_TYPE,
    MYPREFERENCES_CONN_TYPE,
    RENAMED_EXTRAS,
    SERVICE_EXTRAS,
    conn_fields,
    transport_fields,
)
from airflow_provider_prefs.transport.settings import TransportSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONN_FIELDS = {conn_type: conn_fields(conn_type) for conn_type in SERVICE_EXTRAS}
#: Settings models and the extras each reads, per connection type.
MODELS: dict[str, type[BaseModel]] = {
    ADOBE_CONN_TYPE: OfferLibrarySettings,
    MYPREFERENCES_CONN_TYPE: MyPreferencesSettings,
}
FIELDS = [(conn_type, name) for conn_type, fields in CONN_FIELDS.items() for name in fields]


def ui_masker() -> Any:
    """The masker the Airflow API server applies to connection extras, with its default sensitive names."""
    from airflow._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker

    masker = SecretsMasker()
    masker.sensitive_variables_fields = list(DEFAULT_SENSITIVE_FIELDS)
    return masker


@pytest.mark.parametrize(("conn_type", "name"), FIELDS, ids=[f"{t}.{n}" for t, n in FIELDS])
def test_form_field_is_shown_and_saved_unmasked(conn_type: str, name: str) -> None:
    """Unless it is a secret: then masked, with no default (Airflow keeps a stored secret when the form sends ***,
    but a default it never stored would be saved as ***)."""
    masker = ui_masker()
    schema = CONN_FIELDS[conn_type][name]["schema"]
    if schema.get("format") == "password":
        assert masker.should_hide_value_for_key(name) and schema.get("default") is None, name
        return
    assert not masker.should_hide_value_for_key(name), f"the Airflow UI would show and save {name!r} as ***"
    default = schema.get("default")
    if default is not None:
        assert masker.redact({name: default}) == {name: default}


def test_the_renamed_extras_were_masked() -> None:
    """Why they were renamed: proves the check above can fail."""
    masker = ui_masker()
    assert all(masker.should_hide_value_for_key(old) for names in RENAMED_EXTRAS.values() for old in names)


def test_transport_form_fields_are_generated_from_the_settings_model() -> None:
    fields = transport_fields()
    assert list(fields) == list(TransportSettings.model_fields)
    for name, info in TransportSettings.model_fields.items():
        assert fields[name]["schema"].get("default") == info.default, name
        assert fields[name]["label"] == info.title and fields[name]["description"] == info.description, name
        assert "null" in fields[name]["schema"]["type"], f"{name}: an empty form field must take the default"
    assert fields["max_attempts"]["schema"]["minimum"] == 1 and fields["max_attempts"]["schema"]["maximum"] == 20


@pytest.mark.parametrize("conn_type", list(MODELS))
def test_service_extras_defaults_match_the_settings(conn_type: str) -> None:
    model = MODELS[conn_type]
    for name, declared in CONN_FIELDS[conn_type].items():
        info = model.model_fields.get(name)
        if info is not None and info.default is not None and not info.is_required():
            assert declared["schema"].get("default") == info.default, name


def readme_generator() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "scripts" / "readme_extras.py"))


def test_readme_extras_tables_are_the_generated_ones() -> None:
    generator = readme_generator()
    text = README.read_text()
    assert generator["updated"](text) == text, "README.md extras tables are out of date: run `make readme`"


def test_readme_generator_notices_a_changed_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves the check above can fail: a new default in the model changes the generated table."""
    generator = readme_generator()
    text = README.read_text()
    changed = {
        **transport_fields(),
        "timeout": {**transport_fields()["timeout"], "schema": {"type": ["number", "null"], "default": 61}},
    }
    monkeypatch.setitem(generator["tables"].__globals__, "transport_fields", lambda: changed)
    assert "| `timeout` | number (s) | `61` |" in generator["updated"](text)


@pytest.mark.parametrize(("conn_type", "name"), FIELDS, ids=[f"{t}.{n}" for t, n in FIELDS])
def test_readme_documents_every_extra_with_its_default(conn_type: str, name: str) -> None:
    text = README.read_text()
    assert f"| `{name}` |" in text, f"README lacks a row for `{name}`"


def test_readme_documents_the_old_names() -> None:
    text = README.read_text()
    for conn_type, names in RENAMED_EXTRAS.items():
        for old, new in names.items():
            assert f"`{old}`" in text and f"`{new}`" in text, (conn_type, old)


def test_old_extra_names_are_still_read(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = connections.url
    set_connection(
        monkeypatch,
        "old_adobe",
        url,
        base="adobe_offer_library_default",
        drop_extra=("ims_endpoint",),
        extra={"ims_token_url": f"{url}/ims/token/v3"},
    )
    set_connection(
        monkeypatch,
        "old_mp",
        url,
        base="mypreferences_oauth",
        drop_extra=("oauth_endpoint", "auth_type"),
        extra={"token_url": f"{url}/mypreferences/oauth/token"},
    )
    assert OfferLibraryHook("old_adobe").get_offer("fallbackOffer1234")["id"] == "fallbackOffer1234"
    assert MyPreferencesHook("old_mp").get_profile("Ada@Example.com", "Email")["ProfileId"]
    assert [e["route"] for e in journal(connections) if e["route"].endswith("token")] == ["ims.token", "mp.token"]


def test_new_name_wins_over_a_masked_old_one(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After upgrading, the form saves the new name; the old masked value may linger in the JSON."""
    set_connection(
        monkeypatch, "both", connections.url, base="adobe_offer_library_default", extra={"ims_token_url": "***"}
    )
    assert OfferLibraryHook("both").get_offer("fallbackOffer1234")["etag"] >= 1


def test_environment_is_case_insensitive_and_host_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch, "env", "http://127.0.0.1:1", base="mypreferences_default", extra={"environment": " Staging"}
    )
    assert MyPreferencesHook("env").settings.base_url == "http://127.0.0.1:1"
    set_connection(
        monkeypatch, "env", "http://x", base="mypreferences_default", host=None, extra={"environment": "Staging"}
    )
    assert MyPreferencesHook("env").settings.base_url == "https://pmstg.mypreferences.com"


def test_unset_form_fields_fall_back_to_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Airflow form saves empty optional fields as null or "": they mean "use the default"."""
    set_connection(
        monkeypatch,
        "blank",
        "http://127.0.0.1:1",
        base="adobe_offer_library_default",
        extra={"timeout": None, "max_attempts": "", "ims_endpoint": None, "scopes": ""},
    )
    hook = OfferLibraryHook("blank")
    assert hook.transport.timeout == TransportSettings().timeout
    assert hook.settings.ims_endpoint == CONN_FIELDS[ADOBE_CONN_TYPE]["ims_endpoint"]["schema"]["default"]


@pytest.mark.parametrize("conn_id", ["adobe_offer_library_default", "mypreferences_oauth"])
def test_masker_stays_bounded_over_800_hooks(connections: Any, conn_id: str) -> None:
    """Each new hook used to fetch (and register with the secrets masker) a token of its own; the
    masker recompiles one pattern over every secret it holds, so a long-lived process slowed down
    with every hook. Hooks of one process now share the token of the same credentials."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    hook_class: type[OfferLibraryHook | MyPreferencesHook] = (
        OfferLibraryHook if conn_id.startswith("adobe") else MyPreferencesHook
    )
    masker = _secrets_masker()
    before = len(masker.patterns)
    headers = set()
    for _ in range(800):
        hook = hook_class(conn_id)
        auth = hook.client.auth
        assert auth is not None
        headers.add(auth.authorization(hook.client.fetch_token))
        hook.close()
    token_requests = [e for e in journal(connections) if e["route"].endswith("token")]
    assert len(headers) == 1 and len(token_requests) == 1
    assert len(masker.patterns) - before <= 3  # the client secret and one token (Airflow dedupes the rest)
    assert next(iter(headers)).removeprefix("Bearer ") in "|".join(masker.patterns).replace("\\", "")


def test_prefixed_form_keys_of_older_airflow_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Older Airflow forms saved custom fields as ``extra__<conn_type>__<name>``."""
    set_connection(
        monkeypatch,
        "prefixed",
        "http://127.0.0.1:1",
        base="mypreferences_default",
        drop_extra=("client_id",),
        extra={"extra__mypreferences__client_id": "ACME", "extra__mypreferences__timeout": 7},
    )
    hook = MyPreferencesHook("prefixed")
    assert (hook.settings.client_id, hook.transport.timeout) == ("ACME", 7)
