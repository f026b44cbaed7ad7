"""The flow both patch operators share: explicit patch or desired state, dry run, one XCom summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_prefs._compat import BaseOperator, fail_task_exception
from airflow_provider_prefs.operators.arguments import check_change_arguments

if TYPE_CHECKING:
    from airflow_provider_prefs.changes import Resource
    from airflow_provider_prefs.hooks.base import PrefsApiHook


class PatchOperatorBase(BaseOperator):
    """Shared base of the patch operators; use :class:`FallbackOfferPatchOperator` or :class:`ProfilePatchOperator`.

    :param patch: a JSON Patch (list of operations, or its JSON text), validated before sending.
    :param desired: instead of ``patch``, the fields you want (a JSON Merge Patch of the resource);
        the current resource is read, the minimal patch computed and guarded with ``test`` ops, and
        nothing is sent when it already matches.
    :param dry_run: log the patch and a diff of the resulting document; send no change.
    :param transport: overrides of the connection's transport extras (``timeout``, ``max_attempts``...).
    :param allow_type_changes: let ``desired`` change a field's JSON type (e.g. a list to a string);
        refused by default because it is far more often a mistake.
    """

    template_fields: Sequence[str] = ("patch", "desired", "conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"patch": "json", "desired": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        conn_id: str,
        patch: Any = None,
        desired: Any = None,
        dry_run: bool = False,
        transport: dict[str, Any] | None = None,
        allow_type_changes: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_change_arguments(type(self).__name__, patch, desired)
        self.allow_type_changes = allow_type_changes
        self.conn_id = conn_id
        self.patch = patch
        self.desired = desired
        # BaseOperator already has a dry_run() method; keep the argument name users expect.
        self.is_dry_run = dry_run
        self.transport = transport

    def get_hook(self) -> PrefsApiHook:
        """The service hook for ``conn_id``."""
        raise NotImplementedError

    def resource(self) -> Resource:
        """The offer or profile this task changes."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        """Plan or validate, then preview or send; return the outcome summary (XCom)."""
        from airflow_provider_prefs.changes import apply_change
        from airflow_provider_prefs.errors import PrefsError

        try:
            outcome = apply_change(
                self.resource(),
                patch=self.patch,
                desired=self.desired,
                dry_run=self.is_dry_run,
                allow_type_changes=self.allow_type_changes,
                log=self.log,
            )
        except PrefsError as exc:
            if exc.retryable:
                raise
            # Bad input and 4xx answers fail the same way every time: do not burn task retries.
            raise fail_task_exception()(str(exc)) from exc
        finally:
            self.get_hook().close()
        return outcome.to_xcom()
