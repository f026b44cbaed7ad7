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
    from airflow_provider_prefs.models import PatchOutcome
    from airflow_provider_prefs.operators.checkpoint import TaskCheckpoint
    from airflow_provider_prefs.patching.changes import Resource

#: A patch task keeps one record in the task state store, under ``patch.change``: the operations
#: (``{"target", "ops", "base"?}``) before sending; replaced by the answer (``{"target", "outcome"}``)
#: when work follows the patch (a wait for completion); forgotten when the task succeeds.
CHECKPOINT_NAMESPACE = "patch"
CHANGE_KEY = "change"


def recorded_outcome(record: Any) -> dict[str, Any] | None:
    """The answer an earlier try of this task instance recorded, if its record holds one."""
    outcome = record.get("outcome") if isinstance(record, dict) else None
    return outcome if isinstance(outcome, dict) else None


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

    On Airflow 3.3+ each task instance patches at most once, across retries and killed workers: the
    operations are recorded in the task state store before sending, and the summary after when a
    wait follows (see :meth:`patch_at_most_once`). Airflow's ``ResumableJobMixin`` is not used: it
    stores the job id only *after* submitting (the window it documents as a known limitation is
    exactly "sent, answer lost"), it resubmits fresh after a failed job (a patch must be re-judged,
    never re-planned), and it covers only the worker path, not the deferrable one.
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

    def checkpoint(self, context: Any) -> TaskCheckpoint:
        """This task instance's memory across retries (a no-op without Airflow's task state store)."""
        from airflow_provider_prefs.operators.checkpoint import TaskCheckpoint

        return TaskCheckpoint.from_context(context, CHECKPOINT_NAMESPACE, self.log)

    def execute(self, context: Any) -> dict[str, Any]:
        """Plan or validate, then preview or send, at most once per task instance; return the summary (XCom)."""
        return self.task_done(context, self.patch_at_most_once(context, keep_outcome=False))

    def task_done(self, context: Any, result: dict[str, Any]) -> dict[str, Any]:
        """The task instance succeeded: forget its checkpoint, so clearing the task later patches anew.

        Nothing to forget (no call) when this try neither found nor wrote a record: a dry run, a
        resource already as desired, or a runner without a task state store.
        """
        if getattr(self, "_checkpoint_kept", True):
            self.checkpoint(context).forget_on_success(CHANGE_KEY)
            self._checkpoint_kept = False
        return result

    def patch_at_most_once(self, context: Any, *, keep_outcome: bool = True) -> dict[str, Any]:
        """Plan or validate, then preview or send; a retry of this task instance never sends twice.

        One read of the task state store first, on every try: ``try_number`` 1 does not prove that
        nothing ran before (``airflow tasks test`` after a killed ``dags test``, a queue that redelivers
        a killed worker's message run the same try again). Before sending, the exact operations are
        recorded (one write). A retry that finds only them (the earlier try was cut off mid-request,
        or died before it could forget them) re-judges them on a fresh read and sends those same
        operations only if they did not land.

        ``keep_outcome``: also record the summary after the answer (one more write), for callers
        that still have work to do before the task can succeed (a wait for completion): a retry
        that finds it returns it without reading or sending. :meth:`execute` does not need it, since
        it succeeds right after the answer: if it dies in between, the retry's re-judging settles it.
        """
        from airflow_provider_prefs.errors import PrefsError

        checkpoint = self.checkpoint(context)
        record = checkpoint.get(CHANGE_KEY)
        # Whether the store may hold this task's record, i.e. whether success has something to forget.
        self._checkpoint_kept = record is not None
        recorded = recorded_outcome(record)
        if recorded is not None:
            self.log.info(
                "%s: an earlier try of this task instance already got its answer (%s); not sending again",
                recorded.get("target"),
                recorded.get("status"),
            )
            self.record_change(context, recorded)
            return recorded
        try:
            outcome = self._patch_once(checkpoint, record)
        except PrefsError as exc:
            if exc.retryable:
                raise
            # Bad input and 4xx answers fail the same way every time: do not burn task retries.
            raise AirflowFailException(str(exc)) from exc
        finally:
            self.hook.close()
        result = outcome.to_xcom()
        if keep_outcome and outcome.status != "dry_run" and checkpoint.available:
            checkpoint.set(CHANGE_KEY, {"target": result.get("target"), "outcome": result})
            self._checkpoint_kept = True
        self.record_change(context, result)
        return result

    def record_change(self, context: Any, result: dict[str, Any]) -> None:
        """Emit the asset event of an applied change (kept for OpenLineage); nothing for other outcomes."""
        self.changed_assets = ChangedAssets()
        if result.get("status") == "applied":
            self.changed_assets.add(self.resource().asset_uri)
        self.changed_assets.emit(context, self.changes_alias, self.log)

    def _patch_once(self, checkpoint: TaskCheckpoint, record: Any) -> PatchOutcome:
        from airflow_provider_prefs.errors import PrefsError
        from airflow_provider_prefs.patching.changes import Change, PlannedChange, carry_out
        from airflow_provider_prefs.patching.resume import intent_record, planned_from_intent

        resource = self.resource()

        def keep_intent(planned: PlannedChange) -> None:
            if checkpoint.available:
                checkpoint.set(CHANGE_KEY, intent_record(resource, planned))
                self._checkpoint_kept = True

        change = Change(patch=self.patch, desired=self.desired, allow_type_changes=self.allow_type_changes)
        try:
            return carry_out(
                resource,
                change,
                recorded=planned_from_intent(record, resource, self.log),
                record=keep_intent,
                dry_run=self.is_dry_run,
                log=self.log,
            ).outcome
        except PrefsError as exc:
            if surely_not_applied(exc) and self._checkpoint_kept:
                # The service refused it (or it never left): forget it, so that once the DAG or the
                # connection is fixed, clearing the task plans the change anew instead of resending this one.
                checkpoint.delete(CHANGE_KEY)
                self._checkpoint_kept = False
            raise


def surely_not_applied(exc: Exception) -> bool:
    """True when ``exc`` proves the change was not applied: refused with a 4xx, or never sent."""
    from airflow_provider_prefs.errors import (
        ApiError,
        ConcurrentModificationError,
        ConfigurationError,
        InvalidInputError,
        UntrustedCertificateError,
    )

    if isinstance(exc, ApiError):
        return 400 <= exc.status < 500 and exc.status != 429
    return isinstance(
        exc, ConcurrentModificationError | ConfigurationError | InvalidInputError | UntrustedCertificateError
    )
