"""The flow both patch operators share: explicit patch or desired state, dry run, one XCom summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_prefs._compat import BaseOperator, fail_task_exception

if TYPE_CHECKING:
    from airflow_provider_prefs.exactly_once import PatchResult
    from airflow_provider_prefs.hooks.base import PrefsApiHook
    from airflow_provider_prefs.models import PatchOutcome
    from airflow_provider_prefs.patching import Patch, PatchRules


class PatchOperatorBase(BaseOperator):
    """Shared base of the patch operators; use :class:`FallbackOfferPatchOperator` or :class:`ProfilePatchOperator`.

    :param patch: a JSON Patch (list of operations, or its JSON text), validated before sending.
    :param desired: instead of ``patch``, the fields you want (a JSON Merge Patch of the resource);
        the current resource is read, the minimal patch computed and guarded with ``test`` ops, and
        nothing is sent when it already matches.
    :param dry_run: log the patch and a diff of the resulting document; send no change.
    :param transport: overrides of the connection's transport extras (``timeout``, ``max_attempts``...).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (patch is None) == (desired is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of patch= or desired=")
        self.conn_id = conn_id
        self.patch = patch
        self.desired = desired
        # BaseOperator already has a dry_run() method; keep the argument name users expect.
        self.is_dry_run = dry_run
        self.transport = transport

    # What each service fills in.
    def get_hook(self) -> PrefsApiHook:
        """The service hook for ``conn_id``."""
        raise NotImplementedError

    @property
    def target(self) -> str:
        """How logs and errors name the resource, e.g. ``offer 'fallbackOffer1234'``."""
        raise NotImplementedError

    def read_current(self) -> dict[str, Any]:
        """GET the resource."""
        raise NotImplementedError

    def send(self, ops: Patch, base: dict[str, Any] | None) -> PatchResult:
        """PATCH the resource exactly once."""
        raise NotImplementedError

    def summarize(self, outcome: PatchOutcome, document: dict[str, Any]) -> PatchOutcome:
        """Attach the service's small summary of ``document`` to ``outcome``."""
        raise NotImplementedError

    @property
    def rules(self) -> PatchRules:
        """The service's patch rules."""
        return self.get_hook().patch_rules

    def execute(self, context: Any) -> dict[str, Any]:
        """Plan, validate, preview or send; return the outcome summary (XCom)."""
        from airflow_provider_prefs.errors import PrefsError

        try:
            return self.run_patch().to_xcom()
        except PrefsError as exc:
            if exc.retryable:
                raise
            # Bad input and 4xx answers fail the same way every time: do not burn task retries.
            raise fail_task_exception()(str(exc)) from exc
        finally:
            self.get_hook().close()

    def run_patch(self) -> PatchOutcome:
        """The patch flow, without the Airflow error mapping (usable from other tasks too)."""
        from airflow_provider_prefs.models import PatchOutcome
        from airflow_provider_prefs.patching import plan_patch, render_preview, validate_patch

        current: dict[str, Any] | None = None
        if self.desired is not None:
            current = self.read_current()
            ops = plan_patch(current, _as_json(self.desired, "desired"), self.rules)
            if not ops:
                self.log.info("%s is already up to date; nothing sent", self.target)
                return self.summarize(PatchOutcome(status="unchanged", target=self.target), current)
        else:
            ops = validate_patch(_as_json(self.patch, "patch"), self.rules)
        self.log.info("%s: %d operation(s) to send: %s", self.target, len(ops), [op["op"] for op in ops])
        if self.is_dry_run:
            if current is None:
                current = self.read_current()
            self.log.info(
                "Dry run, nothing sent. Preview for %s:\n%s", self.target, render_preview(current, ops, self.rules)
            )
            return self.summarize(PatchOutcome(status="dry_run", target=self.target, operations=len(ops)), current)
        result = self.send(ops, current)
        if result.reconciled:
            self.log.warning("%s: the answer was lost; a re-read confirmed the patch was applied once", self.target)
        outcome = PatchOutcome(status="applied", target=self.target, operations=len(ops), reconciled=result.reconciled)
        return self.summarize(outcome, result.answer)


def _as_json(value: Any, name: str) -> Any:
    """Templated values arrive as JSON text unless the DAG renders native objects."""
    if isinstance(value, str | bytes):
        import json

        from airflow_provider_prefs.errors import PatchValidationError

        try:
            return json.loads(value)
        except ValueError as exc:
            raise PatchValidationError(f"{name} is not valid JSON: {exc}") from exc
    return value
