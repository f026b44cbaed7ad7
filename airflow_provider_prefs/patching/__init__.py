"""The patch engine: JSON Patch rules, self-guards, exactly-once sends, one change, task-level resume.

Modules: ``rules`` (validate, plan from a desired state, preview), ``guards`` (``test`` ops that make a
second copy of a patch fail), ``exactly_once`` (send so a lost answer never applies twice), ``changes``
(one change to one resource), ``resume`` (resume a change an earlier try sent). No HTTP here: the hooks
pass the transport in. This package imports nothing.
"""
