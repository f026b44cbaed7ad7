"""Operators: thin tasks over the hooks. Import cost is kept low because DAG files import these."""

from airflow_provider_prefs.operators.bulk import BulkFallbackOfferPatchOperator, BulkProfilePatchOperator
from airflow_provider_prefs.operators.mypreferences import ProfilePatchOperator
from airflow_provider_prefs.operators.offer_library import FallbackOfferPatchOperator

__all__ = [
    "BulkFallbackOfferPatchOperator",
    "BulkProfilePatchOperator",
    "FallbackOfferPatchOperator",
    "ProfilePatchOperator",
]
