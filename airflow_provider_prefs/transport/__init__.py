"""The HTTP layer under both hooks: the client (sync and async), the retry policy, bearer tokens.

Modules: ``client`` (sessions, send loop, error mapping), ``retry`` (the one retry policy and the 429
gate), ``auth`` (static tokens and OAuth client credentials), ``token_cache`` (tokens shared by the
task processes of a worker). Import the module you need; this package imports nothing, so DAG files
that import operators stay light.
"""
