"""The sandbox's in-memory world: documents, credentials, tokens, journal, faults and config.

Thread-safe (one lock) because tests read it from another thread while the server runs. The API
rules both vendors share (JSON Patch application with an op allow-list and read-only paths) live
once in :func:`apply_patch_rules`.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer

from airflow_provider_prefs.sandbox.faults import FaultPlan, FaultRule
from airflow_provider_prefs.sandbox.seed import load_seed

# The vendor's facts, written here independently of patching.OFFER_RULES on purpose: the sandbox is
# the oracle the client's own validation is tested against, so it must not borrow that validation.
OFFER_METADATA = (
    "id",
    "datasetId",
    "sandboxId",
    "etag",
    "createdDate",
    "lastModifiedDate",
    "createdBy",
    "lastModifiedBy",
    "createdByClientId",
    "lastModifiedByClientId",
)
OFFER_OPS = frozenset({"add", "replace", "remove", "copy", "test"})
PROFILE_OPS = frozenset({"add", "replace", "remove", "test"})
PROFILE_READ_ONLY = ("ProfileId", "Edited", "UpdateStatus")
#: The vendor's profile field types (api-notes.md), as Python types; bool is checked apart from int.
PROFILE_FIELD_TYPES: dict[str, type] = {
    "ProfileId": int,
    "IsActive": bool,
    "RegistrationConfirmed": bool,
    "CustomerType": str,
    "PreserveConsents": bool,
    "PreservePreferences": bool,
    "CustomerName": dict,
    "DefaultLocale": str,
    "CustomFields": list,
}
PENDING, COMPLETE = "Pending Update", "Complete"
REDACTED = "***"
SECRET_HEADERS = frozenset({"authorization", "x-api-key"})
SECRET_FIELDS = frozenset({"client_secret", "access_token", "token", "password"})


class SandboxError(Exception):
    """An API error answer: status, message, and which error shape to use."""

    def __init__(self, status: int, message: str, *, code: str = "", text: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or f"SANDBOX-{status}"
        self.text = text


class PatchTestFailed(SandboxError):
    """A ``test`` op failed: nothing was applied."""


def check_profile_types(profile: dict[str, Any]) -> None:
    """400 when a profile field holds the wrong JSON type, as the vendor's schema validation does."""
    for name, expected in PROFILE_FIELD_TYPES.items():
        if name not in profile:
            continue
        value = profile[name]
        wrong = isinstance(value, bool) != (expected is bool) or not isinstance(value, expected)
        if wrong:
            raise SandboxError(400, f"The field {name} must be of type {expected.__name__}: invalid value")
    for index, item in enumerate(profile.get("CustomFields", [])):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str) or "Value" not in item:
            raise SandboxError(400, f"CustomFields[{index}] must be an object with Name and Value")


def now_iso() -> str:
    """ISO 8601 with milliseconds and Z, as Adobe writes dates."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def apply_patch_rules(
    document: dict[str, Any],
    ops: Any,
    *,
    allowed: frozenset[str],
    read_only: tuple[str, ...],
    descending_removes: bool,
) -> dict[str, Any]:
    """Check a JSON Patch against one API's rules and apply it atomically to a copy."""
    if not isinstance(ops, list) or not ops:
        raise SandboxError(400, "the body must be a non-empty JSON array of RFC 6902 operations")
    last_remove: dict[str, int] = {}
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise SandboxError(400, f"operation {index} is not a valid JSON Patch operation")
        name = op["op"]
        if name not in allowed:
            raise SandboxError(
                400, f"operation {index} ({name}) is not allowed; allowed ops: {', '.join(sorted(allowed))}"
            )
        try:
            tokens = jsonpointer.JsonPointer(op["path"]).parts
        except jsonpointer.JsonPointerException as exc:
            raise SandboxError(400, f"operation {index}: invalid path {op['path']!r}: {exc}") from None
        if not tokens or tokens[0] in read_only:
            raise SandboxError(400, f"operation {index}: path {op['path'] or '/'} is read-only")
        if descending_removes and name == "remove" and tokens[-1].isdigit():
            array, position = "/" + "/".join(tokens[:-1]), int(tokens[-1])
            if array in last_remove and position >= last_remove[array]:
                raise SandboxError(
                    400,
                    f"removes from {array} must be in descending index order: {last_remove[array]} then {position}",
                )
            last_remove[array] = position
    try:
        return dict(jsonpatch.apply_patch(document, ops, in_place=False))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchTestFailed(409, f"test failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as exc:
        raise SandboxError(400, f"patch cannot be applied: {exc}") from None


@dataclass
class Token:
    """An issued bearer token."""

    kind: str  # "ims" or "mp"
    owner: str  # Adobe client id, or MyPreferences client id
    issued_to: str
    expires_at: float


class SandboxState:
    """Everything the sandbox knows; every public method is thread-safe."""

    def __init__(
        self,
        seed: str | Path | dict[str, Any] | None = None,
        *,
        pending_delay: float = 2.0,
        token_lifetime: int = 3600,
        journal_limit: int = 100_000,
    ) -> None:
        self._lock = threading.RLock()
        self._seed_source = seed
        self.pending_delay = pending_delay
        self.token_lifetime = token_lifetime
        self.journal_limit = journal_limit
        self.journal_enabled = True
        self.faults = FaultPlan()
        self._load()

    # ----- lifecycle and config ---------------------------------------------------------------
    def _load(self) -> None:
        seed = load_seed(self._seed_source)
        adobe, mp = seed["adobe"], seed["mypreferences"]
        self.adobe_clients = {c["client_id"]: c for c in adobe["clients"]}
        self.offers: dict[str, dict[str, dict[str, Any]]] = {}
        for sandbox, offers in adobe["offers"].items():
            self.offers[sandbox] = {o["id"]: self._with_metadata(o, sandbox) for o in offers}
        self.mp_clients = {c["client_id"]: c for c in mp["clients"]}
        self.profiles: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.pending_until: dict[tuple[str, str, str], float] = {}
        self.status_override: dict[tuple[str, str, str], str] = {}
        for client_id, entries in mp["profiles"].items():
            self.profiles[client_id] = {
                (e["alternate_id"].lower(), e["alternate_id_type"].lower()): copy.deepcopy(e["profile"])
                for e in entries
            }
        self.tokens: dict[str, Token] = {}
        self._journal: list[dict[str, Any]] = []
        self._seq = 0

    @staticmethod
    def _with_metadata(offer: dict[str, Any], sandbox: str) -> dict[str, Any]:
        doc = copy.deepcopy(offer)
        stamp = "2026-01-01T00:00:00.000Z"
        defaults = {
            "datasetId": "sandbox-dataset",
            "sandboxId": f"sandbox-{sandbox}",
            "etag": 1,
            "createdDate": stamp,
            "lastModifiedDate": stamp,
            "createdBy": "seed",
            "lastModifiedBy": "seed",
            "createdByClientId": "seed",
            "lastModifiedByClientId": "seed",
        }
        for key, value in defaults.items():
            doc.setdefault(key, value)
        return doc

    def reset(self) -> None:
        """Back to the seed: documents, tokens, journal and faults."""
        with self._lock:
            self._load()
            self.faults.replace([])

    def set_config(
        self,
        *,
        pending_delay: float | None = None,
        token_lifetime: int | None = None,
        journal: bool | None = None,
    ) -> dict[str, Any]:
        """Change runtime settings; returns them all."""
        with self._lock:
            if pending_delay is not None:
                self.pending_delay = float(pending_delay)
            if token_lifetime is not None:
                self.token_lifetime = int(token_lifetime)
            if journal is not None:
                self.journal_enabled = bool(journal)
            return {
                "pending_delay": self.pending_delay,
                "token_lifetime": self.token_lifetime,
                "journal": self.journal_enabled,
            }

    def set_faults(self, rules: list[dict[str, Any]] | list[FaultRule]) -> None:
        """Replace the fault rules (see :class:`~airflow_provider_prefs.sandbox.faults.FaultRule`)."""
        self.faults.replace(rules)

    # ----- journal ----------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """Append one request to the journal (already redacted by the caller)."""
        with self._lock:
            if not self.journal_enabled:
                return
            self._seq += 1
            entry["seq"] = self._seq
            self._journal.append(entry)
            if len(self._journal) > self.journal_limit:
                del self._journal[: len(self._journal) - self.journal_limit]

    def journal(self) -> list[dict[str, Any]]:
        """A copy of the journal."""
        with self._lock:
            return copy.deepcopy(self._journal)

    def clear_journal(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._journal = []

    def issued_tokens(self) -> list[str]:
        """Every token issued since the last reset (for leak tests)."""
        with self._lock:
            return list(self.tokens)

    # ----- tokens -----------------------------------------------------------------------------
    def issue_token(self, kind: str, form: dict[str, str]) -> dict[str, Any]:
        """Client-credentials grant for Adobe IMS (``ims``) or MyPreferences (``mp``)."""
        if form.get("grant_type") != "client_credentials":
            raise SandboxError(400, "unsupported grant_type; use client_credentials", code="unsupported_grant_type")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        with self._lock:
            owner = None
            if kind == "ims":
                client = self.adobe_clients.get(client_id)
                if client and secrets.compare_digest(client["client_secret"], secret):
                    owner = client_id
            else:
                for mp_client in self.mp_clients.values():
                    for oauth in mp_client.get("oauth_clients", []):
                        if oauth["client_id"] == client_id and secrets.compare_digest(oauth["client_secret"], secret):
                            owner = mp_client["client_id"]
            if owner is None:
                raise SandboxError(401, "invalid client id or secret", code="invalid_client")
            token = secrets.token_urlsafe(24)
            self.tokens[token] = Token(kind, owner, client_id, time.time() + self.token_lifetime)
            return {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}

    def _bearer(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        return authorization[7:].strip()

    def adobe_client(self, headers: dict[str, str]) -> dict[str, Any]:
        """Check the four Adobe headers; return the client and the sandbox name."""
        token = self._bearer(headers.get("authorization"))
        with self._lock:
            issued = self.tokens.get(token or "")
            if issued is None or issued.kind != "ims" or issued.expires_at <= time.time():
                raise SandboxError(401, "Oauth token is not valid (missing, unknown or expired)", code="401013")
            client = self.adobe_clients[issued.owner]
        if headers.get("x-api-key") != client["client_id"]:
            raise SandboxError(403, "x-api-key does not match the client the token was issued to")
        if headers.get("x-gw-ims-org-id") != client["ims_org"]:
            raise SandboxError(403, "x-gw-ims-org-id does not match the client's organization")
        sandbox = headers.get("x-sandbox-name")
        if not sandbox:
            raise SandboxError(400, "x-sandbox-name header is required", code="MISSING-SANDBOX")
        if sandbox not in client["sandboxes"]:
            raise SandboxError(403, f"no access to sandbox {sandbox!r}")
        return {**client, "sandbox": sandbox}

    def mp_caller(self, client_id: str, authorization: str | None) -> str:
        """Check a MyPreferences bearer token for ``client_id``; return who is calling."""
        token = self._bearer(authorization)
        with self._lock:
            for mp_client in self.mp_clients.values():
                if token and token in mp_client.get("static_tokens", []):
                    caller, owner = mp_client["client_id"], mp_client["client_id"]
                    break
            else:
                issued = self.tokens.get(token or "")
                if issued is None or issued.kind != "mp" or issued.expires_at <= time.time():
                    raise SandboxError(
                        401,
                        "Authorization has been denied for this request. "
                        "Verify ClientId, UserId and authorization scheme.",
                    )
                caller, owner = issued.issued_to, issued.owner
            if client_id not in self.mp_clients:
                raise SandboxError(404, f"Unknown client id {client_id}", text=True)
        if owner != client_id:
            raise SandboxError(403, f"Insufficient permissions for client id {client_id}")
        return caller

    # ----- offers -----------------------------------------------------------------------------
    def offer(self, sandbox: str, offer_id: str) -> dict[str, Any]:
        """One offer document (a copy)."""
        with self._lock:
            found = self.offers.get(sandbox, {}).get(offer_id)
            if found is None:
                raise SandboxError(404, f"offer {offer_id!r} not found in sandbox {sandbox!r}", code="3030-404")
            return copy.deepcopy(found)

    def patch_offer(self, sandbox: str, offer_id: str, ops: Any, client_id: str) -> dict[str, Any]:
        """Apply a patch; answer the metadata, as Adobe does."""
        with self._lock:
            current = self.offers.get(sandbox, {}).get(offer_id)
            if current is None:
                raise SandboxError(404, f"offer {offer_id!r} not found in sandbox {sandbox!r}", code="3030-404")
            try:
                patched = apply_patch_rules(
                    current, ops, allowed=OFFER_OPS, read_only=OFFER_METADATA, descending_removes=False
                )
            except PatchTestFailed as exc:
                raise SandboxError(400, exc.message) from None
            patched.update(
                etag=current["etag"] + 1,
                lastModifiedDate=now_iso(),
                lastModifiedBy=client_id,
                lastModifiedByClientId=client_id,
            )
            self.offers[sandbox][offer_id] = patched
            return {key: patched[key] for key in OFFER_METADATA}

    def create_offer(self, sandbox: str, body: Any, client_id: str) -> dict[str, Any]:
        """Create a fallback offer; the server assigns the metadata."""
        if not isinstance(body, dict) or not body.get("name"):
            raise SandboxError(400, "an offer needs at least a name")
        with self._lock:
            offer_id = f"fallbackOffer{secrets.token_hex(6)}"
            doc = {k: v for k, v in body.items() if k not in OFFER_METADATA}
            doc = self._with_metadata({**doc, "id": offer_id}, sandbox)
            doc.update(createdDate=now_iso(), createdBy=client_id, createdByClientId=client_id)
            self.offers.setdefault(sandbox, {})[offer_id] = doc
            return {key: doc[key] for key in OFFER_METADATA}

    def delete_offer(self, sandbox: str, offer_id: str) -> None:
        """Delete an offer."""
        with self._lock:
            if self.offers.get(sandbox, {}).pop(offer_id, None) is None:
                raise SandboxError(404, f"offer {offer_id!r} not found", code="3030-404")

    def list_offers(self, sandbox: str, *, name: str | None, start: int, limit: int) -> tuple[list[Any], int]:
        """A page of offers, optionally filtered by exact name."""
        with self._lock:
            offers = [o for o in self.offers.get(sandbox, {}).values() if name is None or o.get("name") == name]
            return copy.deepcopy(offers[start : start + limit]), len(offers)

    # ----- profiles ---------------------------------------------------------------------------
    def _profile_key(self, client_id: str, alternate_id: str, alternate_id_type: str) -> tuple[str, str]:
        key = (alternate_id.lower(), alternate_id_type.lower())
        if key not in self.profiles.get(client_id, {}):
            raise SandboxError(
                404, f"Profile not found for alternateId {alternate_id} ({alternate_id_type})", text=True
            )
        return key

    def _shown(self, client_id: str, key: tuple[str, str]) -> dict[str, Any]:
        doc = copy.deepcopy(self.profiles[client_id][key])
        full_key = (client_id, *key)
        doc["UpdateStatus"] = self.status_override.get(full_key) or (
            PENDING if self.pending_until.get(full_key, 0) > time.time() else COMPLETE
        )
        return doc

    def profile(self, client_id: str, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        """One profile with its computed ``UpdateStatus`` (a copy)."""
        with self._lock:
            return self._shown(client_id, self._profile_key(client_id, alternate_id, alternate_id_type))

    def patch_profile(
        self, client_id: str, alternate_id: str, alternate_id_type: str, ops: Any, caller: str
    ) -> dict[str, Any]:
        """Apply a patch; the profile reads ``Pending Update`` for ``pending_delay`` seconds."""
        with self._lock:
            key = self._profile_key(client_id, alternate_id, alternate_id_type)
            current = self.profiles[client_id][key]
            patched = apply_patch_rules(
                current, ops, allowed=PROFILE_OPS, read_only=PROFILE_READ_ONLY, descending_removes=True
            )
            check_profile_types(patched)
            patched["Edited"] = {"Date": now_iso(), "By": caller}
            self.profiles[client_id][key] = patched
            self.pending_until[(client_id, *key)] = time.time() + self.pending_delay
            return self._shown(client_id, key)

    def force_update_status(
        self, client_id: str, alternate_id: str, alternate_id_type: str, status: str | None
    ) -> None:
        """Make a profile report any ``UpdateStatus`` (None to go back to the computed one)."""
        with self._lock:
            full_key = (client_id, *self._profile_key(client_id, alternate_id, alternate_id_type))
            if status is None:
                self.status_override.pop(full_key, None)
            else:
                self.status_override[full_key] = status

    def dump(self) -> dict[str, Any]:
        """All documents, for before/after displays."""
        with self._lock:
            return {
                "offers": copy.deepcopy(self.offers),
                "profiles": {
                    client: {f"{k[1]}:{k[0]}": self._shown(client, k) for k in profiles}
                    for client, profiles in self.profiles.items()
                },
            }


def redact(value: Any) -> Any:
    """Copy of a parsed body with secret fields replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
