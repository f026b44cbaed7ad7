"""The patch engine: JSON Patch rules, self-guards, one change sent exactly once, task-level resume.

Modules: ``changes`` (one change to one resource: plan, then preview or send exactly once), ``rules``
(validate, plan from a desired state, preview), ``guards`` (``test`` ops that make a second copy of a
patch fail), ``verdicts`` (judge from a re-read whether a patch whose answer was lost was applied),
``resume`` (resume a change an earlier try sent). No HTTP here: the hooks pass the transport in. This
package imports nothing.
"""
