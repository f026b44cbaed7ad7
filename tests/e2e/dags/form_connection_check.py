"""Uses the connections the browser test saves from the Add Connection form (conn ids ``form_*``).

Not an example: the e2e suite copies it next to the example DAGs in its own DAGs folder.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_prefs.operators import FallbackOfferPatchOperator, ProfilePatchOperator

with DAG(dag_id="form_connection_check", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    FallbackOfferPatchOperator(
        task_id="patch_offer",
        conn_id="form_adobe_offer_library",
        offer_id="fallbackOffer1234",
        desired={"description": "Saved from the connection form on {{ run_id }}."},
    )
    ProfilePatchOperator(
        task_id="patch_profile",
        conn_id="form_mypreferences",
        alternate_id="grace@example.com",
        alternate_id_type="Email",
        desired={"CustomerType": "Commercial"},
    )
