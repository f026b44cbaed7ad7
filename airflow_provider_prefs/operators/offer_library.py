"""Operator that patches an Adobe Journey Optimizer fallback offer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_prefs.assets import OFFER_CHANGES_ALIAS
from airflow_provider_prefs.operators.base import PatchOperatorBase
from airflow_provider_prefs.provider_info import ADOBE_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
    from airflow_provider_prefs.patching.changes import Resource


class FallbackOfferPatchOperator(PatchOperatorBase):
    """Patch a fallback offer: ``PATCH /offers/{offer_id}?offer-type=fallback``.

    Give either ``patch`` (RFC 6902 ops: add, replace, remove, copy, test) or ``desired`` (the
    fields you want; a minimal guarded patch is computed, nothing is sent when it already matches).
    Returns (XCom) ``{"status", "target", "operations", "reconciled", "offer": {id, etag, ...}}``.

    :param offer_id: the fallback offer id (templated; URL-encoded for you).
    :param conn_id: connection of type ``adobe_offer_library``.
    """

    template_fields: Sequence[str] = ("offer_id", *PatchOperatorBase.template_fields)
    changes_alias = OFFER_CHANGES_ALIAS

    def __init__(self, *, offer_id: str, conn_id: str = f"{ADOBE_CONN_TYPE}_default", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.offer_id = offer_id

    @cached_property
    def hook(self) -> OfferLibraryHook:
        """The Offer Library hook."""
        from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

        return OfferLibraryHook(self.conn_id, transport_overrides=self.transport)

    def resource(self) -> Resource:
        """The fallback offer ``offer_id``."""
        return self.hook.offer(self.offer_id)
