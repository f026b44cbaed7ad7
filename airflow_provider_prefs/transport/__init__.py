"""The HTTP layer under both hooks, on httpx: ``httpx.Client`` for hooks, ``httpx.AsyncClient`` for triggers.

Modules: ``client`` (the retry rules, one retry loop without I/O, the sync and async clients that drive
it, one deadline per attempt), ``retry`` (attempt and wait budgets, backoff, the 429 gate), ``auth`` (static
tokens and OAuth client credentials), ``token_cache`` (tokens shared by the task processes of a worker),
``settings`` (the transport extras of both connection types), ``answers`` (successes checked against what the
API promises), ``redact`` (credentials out of quoted server text), ``trust`` (which CA certificates are trusted).
Import the module you need; this package imports nothing, so
DAG files that import operators stay light.
"""
