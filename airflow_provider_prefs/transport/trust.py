"""Which certificates a connection trusts, and the TLS context for that (one per process per CA file, loaded
by its first handshake).

Precedence, first set wins: the connection's ``ca_bundle`` extra (it names this service's CA), then
``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` (what requests reads, in requests' order: worker images built
for Airflow's requests-based providers set them for a corporate CA), then ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` (OpenSSL's variables), then certifi's bundle. ``verify_tls: false`` turns checking off.
Each variable may name a PEM file or a directory of hashed certificates; an empty one counts as unset.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefs.errors import ConfigurationError
from airflow_provider_prefs.transport.settings import TransportSettings

#: Environment variables naming CA certificates, in precedence order (after the ``ca_bundle`` extra).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@dataclass(frozen=True)
class Trust:
    """What certificates are checked against: ``path`` (a file or directory), certifi (None), or nothing."""

    verify: bool
    path: str | None = None
    #: Where it came from, for messages: "extra 'ca_bundle'", "REQUESTS_CA_BUNDLE", ..., "certifi".
    source: str = "certifi"

    def context(self) -> ssl.SSLContext | bool:
        """The TLS context (shared by every client of the process with the same trust), or False."""
        if not self.verify:
            return False
        if self.path is None:
            return tls_context(None, 0)
        try:
            changed = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            raise ConfigurationError(
                f"{self.source} names {self.path!r}, which cannot be read ({exc.strerror}); fix or unset it"
            ) from None
        return tls_context(self.path, changed)


def trust_of(settings: TransportSettings, environ: Mapping[str, str] = os.environ) -> Trust:
    """The trust of a connection: its ``ca_bundle`` extra, else the first CA variable set, else certifi."""
    if not settings.verify_tls:
        return Trust(verify=False, source="nothing (verify_tls is false)")
    if settings.ca_bundle:
        return Trust(verify=True, path=settings.ca_bundle, source="extra 'ca_bundle'")
    for name in CA_VARIABLES:
        if environ.get(name):
            return Trust(verify=True, path=environ[name], source=name)
    return Trust(verify=True)


@functools.lru_cache(maxsize=16)
def tls_context(path: str | None, changed: int) -> ssl.SSLContext:
    """One TLS context per CA file or directory (and its mtime, ``changed``) per process, certifi's for None."""
    return DeferredTrustContext(path)


class DeferredTrustContext(ssl.SSLContext):
    """A client TLS context (certificates and host names checked, as ``ssl.create_default_context()`` sets
    them) whose CA certificates are loaded by its first handshake instead of up front.

    Loading a CA bundle takes 20-45 ms of CPU in every task process, and a task whose hosts are all plain
    HTTP (the sandbox, a gateway inside the cluster) never needs it: ``requests`` loads one only for an
    HTTPS connection too. Until they are loaded the context trusts no certificate, so a handshake that
    did not go through :meth:`wrap_socket` or :meth:`wrap_bio` would fail verification, never pass
    unchecked. A file that cannot be read is still reported when the client is made (:meth:`Trust.context`);
    one that cannot be parsed, at the first HTTPS request, as a :class:`ConfigurationError` sent nowhere.
    """

    def __new__(cls, path: str | None) -> DeferredTrustContext:
        """A client context: it requires a certificate and checks the host name."""
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, path: str | None) -> None:
        #: The CA file or directory; None: certifi's bundle.
        self.path = path
        self._load_lock = threading.Lock()
        self._loaded = False
        # The one other thing ssl.create_default_context() sets for a client (the options are the same).
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and hasattr(self, "keylog_filename"):
            self.keylog_filename = keylog

    @property
    def loaded(self) -> bool:
        """Whether the CA certificates are loaded (a handshake happened)."""
        return self._loaded

    def load(self) -> None:
        """Load the CA certificates, once (thread-safe); every handshake calls this first."""
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            cafile: str | None
            capath: str | None
            if self.path is None:
                import certifi

                cafile, capath = certifi.where(), None
            else:
                is_dir = os.path.isdir(self.path)
                cafile, capath = (None, self.path) if is_dir else (self.path, None)
            try:
                self.load_verify_locations(cafile=cafile, capath=capath)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"CA certificates {self.path!r} cannot be loaded: {exc}") from None
            self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Load the CA certificates if no handshake has yet, then wrap as usual (the blocking client)."""
        self.load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """Load the CA certificates if no handshake has yet, then wrap as usual (the async client, via anyio)."""
        self.load()
        return super().wrap_bio(*args, **kwargs)
