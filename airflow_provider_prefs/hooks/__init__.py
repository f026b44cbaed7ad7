"""Hooks: the only place that holds credentials and does I/O."""
