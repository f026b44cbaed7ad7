"""Triggers: pure-async waits that run in the triggerer."""
