"""OpenLineage: what the provider's extractor path emits for every operator after a real run, and no personal data."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_prefs.operators import (
    BulkFallbackOfferPatchOperator,
    BulkProfilePatchOperator,
    FallbackOfferPatchOperator,
    ProfilePatchOperator,
)
from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor

pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")

ADOBE_NAMESPACE = "adobe-offer://DEMO123@AdobeOrg"
MP_NAMESPACE = "mypreferences://DEMO"
EMAILS = ["Ada@Example.com", "grace@example.com"]
CUSTOMER = [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}]
RENAME = [{"op": "replace", "path": "/name", "value": "Lineage"}]


def lineage(operator: Any) -> Any:
    """Run ``operator`` against the sandbox, then extract as the OpenLineage listener does on success."""
    from airflow.providers.openlineage.extractors.base import DefaultExtractor
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    operator.execute({})
    manager = ExtractorManager()
    assert manager.get_extractor_class(operator) is DefaultExtractor
    result = manager._get_extractor(operator).extract_on_complete(task_instance=None)  # type: ignore[union-attr]
    assert result is not None, "get_openlineage_facets_on_complete failed (the extractor swallows errors)"
    return result


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def serialized(result: Any) -> str:
    """Everything the listener would send of this lineage, as JSON text."""
    from openlineage.client.serde import Serde

    parts = [*result.inputs, *result.outputs, *result.run_facets.values(), *result.job_facets.values()]
    return "\n".join(Serde.to_json(part) for part in parts)


def assert_no_personal_data(result: Any) -> None:
    text = serialized(result).lower()
    assert "adobe-offer://" in text or "mypreferences://" in text  # the check below looks at real output
    assert "example.com" not in text and "@example" not in text
    assert all(email.lower() not in text for email in EMAILS)


@pytest.mark.parametrize(
    ("make", "outputs"),
    [
        (
            lambda: FallbackOfferPatchOperator(task_id="o", offer_id="fallbackOffer1234", patch=RENAME),
            [(ADOBE_NAMESPACE, "dev/fallbackOffer1234")],
        ),
        (
            lambda: ProfilePatchOperator(
                task_id="p", alternate_id=EMAILS[0], alternate_id_type="Email", patch=CUSTOMER
            ),
            [(MP_NAMESPACE, "email")],
        ),
        (
            lambda: BulkFallbackOfferPatchOperator(
                task_id="bo",
                items=[
                    {"offer_id": "fallbackOffer1234", "patch": RENAME},
                    {"offer_id": "fallbackOffer5678", "patch": RENAME},
                ],
            ),
            [(ADOBE_NAMESPACE, "dev/fallbackOffer1234"), (ADOBE_NAMESPACE, "dev/fallbackOffer5678")],
        ),
        (
            lambda: BulkProfilePatchOperator(
                task_id="bp", items=[{"alternate_id": e, "patch": CUSTOMER} for e in EMAILS], alternate_id_type="Email"
            ),
            [(MP_NAMESPACE, "email")],
        ),
    ],
    ids=["offer", "profile", "bulk-offers", "bulk-profiles"],
)
def test_each_operator_names_what_it_changed(connections: Any, make: Any, outputs: list[tuple[str, str]]) -> None:
    result = lineage(make())
    assert sorted(names(result.outputs)) == outputs
    assert result.inputs == []
    assert_no_personal_data(result)


def test_a_dry_run_changes_nothing_so_has_no_output(connections: Any) -> None:
    operator = ProfilePatchOperator(
        task_id="p", alternate_id=EMAILS[0], alternate_id_type="Email", patch=CUSTOMER, dry_run=True
    )
    assert lineage(operator).outputs == []


def test_the_sensor_reads_the_accounts_profiles(connections: Any) -> None:
    sensor = ProfileUpdateStatusSensor(
        task_id="wait", alternate_id=EMAILS[0], alternate_id_type="Email", poke_interval=0.1, timeout=30
    )
    result = lineage(sensor)
    assert (names(result.inputs), result.outputs) == ([(MP_NAMESPACE, "email")], [])
    assert_no_personal_data(result)
