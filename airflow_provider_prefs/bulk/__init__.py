"""Many changes over one hook: ``runner`` (bounded concurrency, one session and 429 gate) and
``progress`` (where a run got to, kept in the task checkpoint). This package imports nothing.
"""
