"""Bearer tokens shared by every task process of one worker (and the triggerer), on local disk.

Each task runs in a new process, so an in-memory cache alone means one token request per task;
Adobe IMS throttles token generation and its tokens live for a day. This cache keeps one token per
set of credentials in a private directory, so the tasks of one worker reuse it until it expires.

Choices, and why:

* **Where**: ``[prefs] token_cache_dir`` in the Airflow config (or ``AIRFLOW__PREFS__TOKEN_CACHE_DIR``),
  default ``$AIRFLOW_HOME/.cache/airflow_provider_prefs/tokens``: local to the worker, never the
  metadata database. The directory is 0700 and must belong to the current user, or the cache turns
  itself off; files are created 0600 and written atomically (``os.replace``).
* **Encrypted with a key derived from the client secret** (Fernet, HMAC-SHA256 of the secret), not
  with Airflow's Fernet key: the cache then holds nothing that someone without the client secret can
  use, and whoever has the secret can get a token anyway. It works whether or not Airflow's Fernet key
  is configured, and a file copied off the machine (backups) is useless.
* **Keyed** by a hash of token URL, client id, scope and a keyed hash of the secret: a rotated secret
  is a new entry; the file name reveals nothing.
* **One fetch at a time per credentials**: the sync path takes an ``flock`` on the entry while it
  fetches, so tasks that start together still make one token request. The async path (triggerer,
  one process) only reads and writes entries; it never blocks the event loop on a lock.
* A 401 drops the entry (only if it still holds the rejected token). Any problem with the cache
  (disk full, foreign owner, corrupt file) is logged without secrets and the token is fetched as
  if there were no cache: the cache can only save requests, never fail a task.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_prefs.provider_info import CONFIG_SECTION, DEFAULT_TOKEN_CACHE_DIR, TOKEN_CACHE_DIR_OPTION
from airflow_provider_prefs.transport.auth import AccessToken, ClientCredentials

log = logging.getLogger(__name__)

_FORMAT = b"prefs-token-cache-v1"


def default_directory() -> Path:
    """The configured cache directory, or the default under ``$AIRFLOW_HOME``."""
    configured = os.environ.get(f"AIRFLOW__{CONFIG_SECTION.upper()}__{TOKEN_CACHE_DIR_OPTION.upper()}")
    if not configured:
        with contextlib.suppress(Exception):  # no Airflow config available: use the default
            from airflow.configuration import conf

            # The declared default (provider_info CONFIG) when airflow.cfg does not set it.
            configured = conf.get(CONFIG_SECTION, TOKEN_CACHE_DIR_OPTION, fallback=None)
    if configured:
        return Path(configured).expanduser()
    home = str(Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser())
    return Path(DEFAULT_TOKEN_CACHE_DIR.format(AIRFLOW_HOME=home))


def _secret_digest(credentials: ClientCredentials, label: bytes) -> bytes:
    secret = credentials.client_secret.get_secret_value().encode()
    return hmac.new(secret, _FORMAT + b"/" + label, hashlib.sha256).digest()


def entry_name(credentials: ClientCredentials) -> str:
    """The file name of an entry: a hash of the credentials, never the secret itself."""
    secret_part = _secret_digest(credentials, b"id").hex()
    parts = [credentials.token_url, credentials.client_id, credentials.scope or "", secret_part]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _fernet(credentials: ClientCredentials) -> Any:
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(_secret_digest(credentials, b"encryption")))


class SharedTokenCache:
    """Tokens on local disk, shared by the processes of one worker; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._usable: bool | None = None

    def __repr__(self) -> str:
        return f"SharedTokenCache({str(self.directory)!r})"

    # ----- public API used by auth.TokenProvider ---------------------------------------------------
    def load(self, credentials: ClientCredentials) -> AccessToken | None:
        """The cached token for ``credentials`` while it is fresh, else None."""
        if not self._ready():
            return None
        path = self._path(credentials)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._trouble("read", exc)
            return None
        return _decode(credentials, blob)

    def store(self, credentials: ClientCredentials, token: AccessToken) -> None:
        """Save ``token`` atomically (temp file 0600 in the same directory, then ``os.replace``)."""
        if not self._ready():
            return
        renew_at = time.time() + token.renew_at - time.monotonic()  # wall clock: the file may outlive a reboot
        payload = json.dumps({"access_token": token.value.get_secret_value(), "renew_at": renew_at}).encode()
        blob = _fernet(credentials).encrypt(payload)
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mkstemp creates 0600
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(blob)
                os.replace(temp, self._path(credentials))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            self._trouble("write", exc)

    def discard(self, credentials: ClientCredentials, rejected: AccessToken | None) -> None:
        """Drop the entry after a 401, unless another process already replaced the rejected token."""
        # No lock (the triggerer calls this from its event loop): a race at worst deletes a token
        # that another process just stored, which costs one extra token request, never a failure.
        current = self.load(credentials)
        if current is None:
            return
        if rejected is not None and current.value.get_secret_value() != rejected.value.get_secret_value():
            return
        try:
            self._path(credentials).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._trouble("delete", exc)

    @contextlib.contextmanager
    def fetch_lock(self, credentials: ClientCredentials) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the entry (one token request at a time per credentials)."""
        handle = None
        if self._ready():
            try:
                handle = os.open(self._path(credentials).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as exc:
                self._trouble("lock", exc)
                if handle is not None:
                    os.close(handle)
                    handle = None
        try:
            yield
        finally:
            if handle is not None:
                os.close(handle)  # closing releases the flock

    # ----- internals ------------------------------------------------------------------------------
    def _path(self, credentials: ClientCredentials) -> Path:
        return self.directory / entry_name(credentials)

    def _ready(self) -> bool:
        """Create the directory 0700 once; refuse one that others could read or that is not ours."""
        if self._usable is None:
            self._usable = self._check_directory()
        return self._usable

    def _check_directory(self) -> bool:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if info.st_uid != os.getuid():
                log.warning("Token cache %s belongs to another user; not using it", self.directory)
                return False
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(self.directory, 0o700)
            return True
        except OSError as exc:
            self._trouble("open", exc)
            return False

    def _trouble(self, what: str, exc: OSError) -> None:
        # Only the error class and errno: a path is harmless, but keep the line short and secret-free.
        log.warning(
            "Token cache %s: cannot %s (%s, errno %s); fetching tokens directly",
            self.directory,
            what,
            type(exc).__name__,
            exc.errno,
        )


def _decode(credentials: ClientCredentials, blob: bytes) -> AccessToken | None:
    """An entry's token, or None if it is stale, corrupt or sealed with another secret."""
    from cryptography.fernet import InvalidToken
    from pydantic import SecretStr

    try:
        data = json.loads(_fernet(credentials).decrypt(blob))
        value = str(data["access_token"])
        left = float(data["renew_at"]) - time.time()
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None
    if left <= 0 or not value:
        return None
    return AccessToken(value=SecretStr(value), renew_at=time.monotonic() + left)


_caches: dict[Path, SharedTokenCache] = {}


def shared_cache(enabled: bool = True) -> SharedTokenCache | None:
    """The process-wide cache for the configured directory, or None when turned off for a connection."""
    if not enabled:
        return None
    directory = default_directory()
    cache = _caches.get(directory)
    if cache is None:
        cache = _caches[directory] = SharedTokenCache(directory)
    return cache
