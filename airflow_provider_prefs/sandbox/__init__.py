"""A faithful local server of both vendor APIs, for the demo, the tests and local DAG development.

``python -m airflow_provider_prefs.sandbox --port 8765`` serves Adobe IMS, the Offer Library and
MyPreferences on one port; ``SandboxServer`` runs it in-process::

    from airflow_provider_prefs.sandbox import SandboxServer

    with SandboxServer(pending_delay=0.3) as server:
        ...  # server.url, server.state.journal(), server.state.set_faults([...])

``airflow_provider_prefs.sandbox.connections`` gives the Airflow connections that point at it.
"""

from airflow_provider_prefs.sandbox.server import SandboxServer
from airflow_provider_prefs.sandbox.state import SandboxState

__all__ = ["SandboxServer", "SandboxState"]
