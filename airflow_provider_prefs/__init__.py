"""Apache Airflow provider for Adobe Journey Optimizer fallback offers and PossibleNOW MyPreferences.

Importing this package is cheap on purpose: DAG files import operators from here, and every DAG
parse pays for whatever this module pulls in. Hooks, HTTP clients and the sandbox load lazily.
"""

__version__ = "0.1.0"
