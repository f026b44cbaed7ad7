"""What the operators share: a connection, dry run, transport overrides and the assets they change
(:class:`ChangeOperatorBase`); and the flow of the two single-resource patch operators: explicit patch or
desired state, at most once per task instance, one XCom summary (:class:`PatchOperatorBase`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_prefs.assets import ChangedAssets, operator_lineage, with_alias_outlet
from airflow_provider_prefs.operators.arguments import check_change_arguments

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.base import PrefsApiHook
    from airflow_provider_prefs.patching.changes import Resource
    from airflow_provider_prefs.patching.checkpoint import Checkpoint

#: Namespace of a patch task's record in the task state store (its key: ``patch.change``).
CHECKPOINT_NAMESPACE = "patch"


class ChangeOperatorBase(BaseOperator):
    """Base of every operator that changes offers or profiles (single and bulk).

    :param conn_id: the Airflow connection of the service.
    :param dry_run: log what would change; send nothing.
    :param transport: overrides of the connection's transport extras (``timeout``, ``max_attempts``...).

    The operator declares the asset alias :attr:`changes_alias` as outlet (the concrete assets depend
    on the connection and the data, known only at run time), attaches an asset event per changed asset
    to it, and reports the same assets as its OpenLineage outputs.
    """

    #: Name of the asset alias the operator declares as outlet and attaches its asset events to.
    changes_alias: ClassVar[str]

    def __init__(
        self, *, conn_id: str, dry_run: bool = False, transport: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        kwargs["outlets"] = with_alias_outlet(kwargs.get("outlets"), self.changes_alias)
        super().__init__(**kwargs)
        self.conn_id = conn_id
        # BaseOperator already has a dry_run() method; keep the argument name users expect.
        self.is_dry_run = dry_run
        self.transport = transport

    @cached_property
    def hook(self) -> PrefsApiHook:
        """The service hook for ``conn_id``, with this task's transport overrides."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the assets this task changed, as outputs (none when nothing was applied)."""
        changed: ChangedAssets | None = getattr(self, "changed_assets", None)  # set when the task ran
        return operator_lineage(outputs=list(changed.uris) if changed is not None else [])


class PatchOperatorBase(ChangeOperatorBase):
    """Shared base of the patch operators; use :class:`FallbackOfferPatchOperator` or :class:`ProfilePatchOperator`.

    :param patch: a JSON Patch (list of operations, or its JSON text), validated before sending.
    :param desired: instead of ``patch``, the fields you want (a JSON Merge Patch of the resource);
        the current resource is read, the minimal patch computed and guarded with ``test`` ops, and
        nothing is sent when it already matches.
    :param dry_run: log the patch and a diff of the resulting document; send no change.
    :param allow_type_changes: let ``desired`` change a field's JSON type (e.g. a list to a string);
        refused by default because it is far more often a mistake.

    When the change is applied (not for a dry run or an unchanged resource), the task emits an
    Airflow asset event for the offer (``adobe-offer://{org}/{sandbox}/{offer}``) or the profiles of
    the account and id type (``mypreferences://{client}/{id type}``), through the asset alias
    :attr:`changes_alias` it declares as outlet; DAGs scheduled on those assets run after it. The
    same asset is the task's OpenLineage output.

    Operators only resolve their arguments (the resource), call the hook's
    :meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.change` (what ``change_offer`` and ``change_profile``
    call too) with the task instance's state store as checkpoint, and push the outcome: a TaskFlow task calling
    the hook gets the same guarantees. Each task instance changes at most once, across retries and killed
    workers: the operations are recorded in the task state store before sending, and the outcome after when a
    wait follows (see :meth:`change_at_most_once`). Airflow's ``ResumableJobMixin`` is not used: it stores the
    job id only *after* submitting (the window it documents as a known limitation is exactly "sent, answer
    lost"), it resubmits fresh after a failed job (a patch must be re-judged, never re-planned), and it covers
    only the worker path, not the deferrable one.
    """

    template_fields: Sequence[str] = ("patch", "desired", "conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"patch": "json", "desired": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self, *, patch: Any = None, desired: Any = None, allow_type_changes: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        check_change_arguments(type(self).__name__, patch, desired)
        self.allow_type_changes = allow_type_changes
        self.patch = patch
        self.desired = desired

    def resource(self) -> Resource:
        """The offer or profile this task changes."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        """Plan or validate, then preview or send, at most once per task instance; return the outcome (XCom)."""
        return self.task_done(self.change_at_most_once(context, keep_outcome=False))

    def change_at_most_once(self, context: Any, *, keep_outcome: bool) -> dict[str, Any]:
        """The hook's change with this task instance's state store as its checkpoint; the outcome as XCom.

        The store is read first, on every try: ``try_number`` 1 does not prove that nothing ran before
        (``airflow tasks test`` after a killed ``dags test``, a queue that redelivers a killed worker's
        message run the same try again). The exact operations are recorded before sending, so a retry
        re-judges them instead of sending twice (see :mod:`~airflow_provider_prefs.patching.checkpoint`).

        ``keep_outcome``: also record the outcome (one more write), for when a wait follows that can
        fail and be retried: the retry returns it without reading or sending.
        """
        from airflow_provider_prefs.errors import PrefsError
        from airflow_provider_prefs.patching.checkpoint import TaskCheckpoint

        self._checkpoint = TaskCheckpoint.from_context(context, CHECKPOINT_NAMESPACE, self.log)
        try:
            outcome = self.hook.change(
                self.resource(),
                patch=self.patch,
                desired=self.desired,
                dry_run=self.is_dry_run,
                allow_type_changes=self.allow_type_changes,
                checkpoint=self._checkpoint,
                keep_outcome=keep_outcome,
            )
        except PrefsError as exc:
            if exc.retryable:
                raise
            # Bad input and 4xx answers fail the same way every time: do not burn task retries.
            raise AirflowFailException(str(exc)) from exc
        finally:
            self.hook.close()
        self.record_change(context, outcome.status, outcome.asset_uri)
        return outcome.to_xcom()

    def task_done(self, result: dict[str, Any]) -> dict[str, Any]:
        """The task instance succeeds with ``result``: forget its record, so clearing it later changes anew."""
        checkpoint: Checkpoint | None = getattr(self, "_checkpoint", None)
        if checkpoint is not None:
            checkpoint.forget_on_success()
        return result

    def record_change(self, context: Any, status: str | None, asset_uri: str | None) -> None:
        """Emit the asset event of an applied change (kept for OpenLineage); nothing for other outcomes."""
        self.changed_assets = ChangedAssets()
        if status == "applied":
            self.changed_assets.add(asset_uri)
        self.changed_assets.emit(context, self.changes_alias, self.log)
