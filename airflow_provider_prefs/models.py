"""Pydantic models of what the services answer and of what our tasks push to XCom.

Vendor answers are validated on the way in (a surprising answer fails loudly instead of leaking
half-parsed data downstream) and only small, plain-JSON summaries leave a task.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

#: ``UpdateStatus`` values the sensor understands.
UPDATE_COMPLETE = "Complete"
UPDATE_PENDING = "Pending Update"
KNOWN_UPDATE_STATUSES = frozenset({UPDATE_COMPLETE, UPDATE_PENDING})


class OfferMetadata(BaseModel):
    """The metadata Adobe returns from a fallback-offer PATCH (and inside every GET)."""

    #: What the client checks each offer answer against (see transport/answers.py).
    EXPECTED: ClassVar[str] = "an offer: a JSON object with a string id and an integer etag"
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    etag: int
    lastModifiedDate: str | None = None
    lastModifiedBy: str | None = None
    lastModifiedByClientId: str | None = None
    createdDate: str | None = None
    sandboxId: str | None = None
    datasetId: str | None = None


class OfferPage(BaseModel):
    """One page of the fallback-offer listing: ``{"results": [...], "count", "total", "_links"}``."""

    EXPECTED: ClassVar[str] = "a page of offers: a JSON object with a results array of objects"
    model_config = ConfigDict(extra="allow")

    results: list[dict[str, Any]]
    count: int | None = None
    total: int | None = None


class ProfileSummary(BaseModel):
    """The small part of a MyPreferences profile that is safe and useful to pass downstream."""

    #: What the client checks each profile answer against (see transport/answers.py).
    EXPECTED: ClassVar[str] = (
        "a profile: a JSON object (ProfileId an integer, UpdateStatus a string, IsActive a boolean, Edited an object)"
    )
    model_config = ConfigDict(extra="ignore")

    ProfileId: int | None = None
    UpdateStatus: str | None = None
    IsActive: bool | None = None
    Edited: dict[str, Any] | None = None

    @property
    def is_complete(self) -> bool:
        """True once MyPreferences finished processing the last update."""
        return self.UpdateStatus == UPDATE_COMPLETE


def profile_summary(profile: dict[str, Any], target: str) -> ProfileSummary:
    """Summarize a profile, refusing an ``UpdateStatus`` we do not know instead of waiting on it forever."""
    from airflow_provider_prefs.errors import UnexpectedAnswerError

    summary = ProfileSummary.model_validate(profile)
    if summary.UpdateStatus not in KNOWN_UPDATE_STATUSES:
        raise UnexpectedAnswerError(
            f"{target} has UpdateStatus {summary.UpdateStatus!r}; expected one of "
            f"{', '.join(sorted(KNOWN_UPDATE_STATUSES))}"
        )
    return summary


ChangeStatus = Literal["applied", "unchanged", "dry_run", "failed"]


class ChangeOutcome(BaseModel):
    """How one change ended: what the hooks' ``change_*`` methods return, and the patch operators' XCom
    (:meth:`to_xcom`). Plain JSON, no secrets, no full documents.

    ``status``: ``applied`` (sent, or an earlier copy confirmed landed), ``unchanged`` (the resource
    already matched), ``dry_run`` (previewed, nothing sent) or ``failed`` (a bulk item's row; a single
    change raises instead).
    """

    status: ChangeStatus
    target: str = Field(description="what was patched, e.g. offer 'fallbackOffer1234'")
    operations: int = 0
    reconciled: bool = Field(
        default=False, description="the answer was lost and a re-read confirmed the patch landed once"
    )
    replans: int | None = Field(
        default=None,
        description="how often the change was planned again because someone else changed the resource first",
    )
    offer: OfferMetadata | None = None
    profile: ProfileSummary | None = None
    error: str | None = None
    #: The asset of the resource, for asset events and lineage; never in XCom.
    asset_uri: str | None = Field(default=None, exclude=True)

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe dict pushed to XCom."""
        return self.model_dump(mode="json", exclude_none=True)


class BulkReport(BaseModel):
    """Totals of a bulk run, plus the failures (capped) that the task reports at the end.

    A resumed run counts every item of the run: ``applied``/``unchanged`` include the ``skipped`` items
    earlier tries finished; ``failed`` counts only this try's failures, since an earlier try's failed
    items are done again (``resumed``: re-judged, or ``retried``: planned anew).
    """

    total: int = 0
    applied: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[ChangeOutcome] = Field(default_factory=list)
    failures_truncated: int = 0
    skipped: int = Field(default=0, description="items an earlier try of the task finished (counted above, not sent)")
    resumed: int = Field(
        default=0,
        description="items an earlier try left in flight (or with an unknown outcome): re-judged, resent only if "
        "they did not land",
    )
    retried: int = Field(
        default=0, description="items an earlier try saw refused (or never sent): planned anew and sent by this try"
    )
    replanned: int = Field(
        default=0, description="items planned again (once or more) because the resource changed after they were read"
    )

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe dict pushed to XCom."""
        return self.model_dump(mode="json", exclude_none=True)
