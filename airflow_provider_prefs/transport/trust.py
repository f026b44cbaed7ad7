"""Which certificates a connection trusts, and the TLS context for that (loaded once per process per CA file).

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
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

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
    """One TLS context per CA file or directory (and its mtime, ``changed``) per process: loading costs ~20 ms."""
    if path is None:
        return httpx.create_ssl_context(verify=True, trust_env=False)  # certifi
    is_dir = os.path.isdir(path)
    try:
        context = ssl.create_default_context(cafile=None if is_dir else path, capath=path if is_dir else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"CA certificates {path!r} cannot be loaded: {exc}") from None
    return httpx.create_ssl_context(verify=context)
