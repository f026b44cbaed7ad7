"""A PATCH goes from the operator to the socket through at most five files of the package.

A newcomer should be able to follow one change by reading a handful of files (issue 14). The spy sits
at the socket, not on a transport class, so it measures whatever HTTP client the transport uses:
requests and httpx both end in ``socket.sendall`` (or ``send``).
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_prefs
from airflow_provider_prefs.operators import (
    BulkFallbackOfferPatchOperator,
    BulkProfilePatchOperator,
    FallbackOfferPatchOperator,
    ProfilePatchOperator,
)

#: The most package files a PATCH may pass through on its way to the socket.
MAX_FILES = 5
PACKAGE = Path(airflow_provider_prefs.__file__).resolve().parent


def package_files_on_stack() -> list[str]:
    """The package files on the current call stack, outermost first, each once (as ``hooks/base.py``)."""
    files: dict[str, None] = {}
    for frame in traceback.extract_stack():
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PACKAGE):
            files.setdefault(path.relative_to(PACKAGE).as_posix())
    return list(files)


@pytest.fixture
def patch_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Record, for every PATCH request written to a socket, the package files on the call stack."""
    paths: list[list[str]] = []

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def sending(self: socket.socket, data: Any, *args: Any) -> Any:
            if bytes(data[:6]) == b"PATCH ":
                paths.append(package_files_on_stack())
            return original(self, data, *args)

        return sending

    monkeypatch.setattr(socket.socket, "sendall", spy(socket.socket.sendall))
    monkeypatch.setattr(socket.socket, "send", spy(socket.socket.send))
    yield paths


def only_path(paths: list[list[str]], what: str) -> list[str]:
    """The one path the PATCH(es) of ``what`` took, printed; fails if none was seen or they differ."""
    assert paths, f"{what}: no PATCH reached a socket"
    assert all(path == paths[0] for path in paths), f"{what}: PATCHes took different paths: {paths}"
    print(f"{what}: {len(paths[0])} file(s): {' -> '.join(paths[0])}")
    return paths[0]


#: One factory per operator that sends PATCHes (built in the test, once its connections exist).
OPERATORS: dict[str, Callable[[], Any]] = {
    "ProfilePatchOperator": lambda: ProfilePatchOperator(
        task_id="profile",
        alternate_id="Ada@Example.com",
        alternate_id_type="Email",
        patch=[{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}],
    ),
    "FallbackOfferPatchOperator": lambda: FallbackOfferPatchOperator(
        task_id="offer",
        offer_id="fallbackOffer1234",
        patch=[{"op": "replace", "path": "/name", "value": "Traced"}],
    ),
    "BulkProfilePatchOperator": lambda: BulkProfilePatchOperator(
        task_id="bulk_profiles",
        items=[{"alternate_id": "Ada@Example.com", "patch": [{"op": "replace", "path": "/IsActive", "value": True}]}],
        alternate_id_type="Email",
        max_concurrency=1,
    ),
    "BulkFallbackOfferPatchOperator": lambda: BulkFallbackOfferPatchOperator(
        task_id="bulk_offers",
        items=[["fallbackOffer1234", [{"op": "add", "path": "/labels/-", "value": "traced"}]]],
        max_concurrency=1,
    ),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_a_patch_reaches_the_socket_through_at_most_five_files(
    connections: Any, patch_paths: list[list[str]], name: str
) -> None:
    OPERATORS[name]().execute({})
    path = only_path(patch_paths, name)
    assert any(file.startswith("transport/") for file in path), f"the spy must see the transport: {path}"
    assert len(path) <= MAX_FILES, f"{name}: a PATCH passes through {len(path)} files: {path}"
