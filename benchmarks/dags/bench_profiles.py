"""The profile updates of the e2e benchmark: one definition for its three DAGs and for ``bench_e2e.py``.

Not a DAG. The benchmark copies it next to the DAGs (Airflow puts the DAGs folder on ``sys.path``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

#: How many profiles each DAG updates (``bench_e2e.py --updates`` passes it down to every component).
UPDATES = int(os.environ.get("PREFS_BENCH_UPDATES", "200"))
CLIENT_ID = "DEMO"
ALTERNATE_ID_TYPE = "Email"
#: The provider's operators authenticate with OAuth client credentials, so token requests show in the count.
MP_CONN_ID = "mypreferences_oauth"
#: An ``http`` connection to the sandbox carrying the static MyPreferences bearer token as a header.
HTTP_CONN_ID = "prefs_bench_http"
#: What every update does: one guard-free replace, so each update is exactly one PATCH for every contender.
PATCH: list[dict[str, Any]] = [{"op": "replace", "path": "/CustomerType", "value": "Commercial"}]
DAG_IDS = {
    "bulk": "prefs_bench_bulk",
    "mapped": "prefs_bench_mapped_profile_patch",
    "http": "prefs_bench_mapped_http",
}
#: Run once before the contenders (not measured): see ``prefs_bench_warmup.py``.
WARMUP_DAG_ID = "prefs_bench_warmup"


def maybe_profiled(operator: type[Any]) -> type[Any]:
    """``operator`` itself; with ``PREFS_BENCH_PROFILE=<folder>``, a subclass that profiles each ``execute()``.

    For finding where a mapped task's own time goes (``python -m pstats`` on the files); runs that
    measure leave the variable unset, so the DAGs run the operators exactly as users would.
    """
    folder = os.environ.get("PREFS_BENCH_PROFILE")
    if not folder:
        return operator

    class Profiled(operator):
        def execute(self, context: Any) -> Any:
            import cProfile

            profile = cProfile.Profile()
            try:
                return profile.runcall(super().execute, context)
            finally:
                profile.dump_stats(f"{folder}/{type(self).__name__}-{context['ti'].map_index}.prof")

    Profiled.__name__ = Profiled.__qualname__ = operator.__name__
    return Profiled


def alternate_ids(count: int = UPDATES) -> list[str]:
    """The alternate ids (e-mail addresses) of the benchmark's profiles."""
    return [f"bench-{index:04d}@example.com" for index in range(count)]


def seed_entries(count: int = UPDATES) -> list[dict[str, Any]]:
    """The profiles as the sandbox's ``add_profiles`` takes them, all with the value the patch replaces."""
    return [
        {
            "alternate_id": alternate_id,
            "alternate_id_type": ALTERNATE_ID_TYPE,
            "profile": {"ProfileId": 50_000 + index, "IsActive": True, "CustomerType": "Retail", "CustomFields": []},
        }
        for index, alternate_id in enumerate(alternate_ids(count))
    ]


def profile_endpoint(alternate_id: str) -> str:
    """The MyPreferences profile URL below the host, with its query (what ``HttpOperator`` needs as endpoint)."""
    query = urlencode({"alternateId": alternate_id, "alternateIdType": ALTERNATE_ID_TYPE})
    return f"api/v4/{CLIENT_ID}/profiles?{query}"
