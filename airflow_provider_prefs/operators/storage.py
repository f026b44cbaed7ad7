"""Bulk input and per-item reports in files or object storage (JSON Lines, streamed).

``items`` and ``report_path`` may be a local path, a URI (``file://``, ``s3://``, ``gs://``,
``memory://``...) or an :class:`airflow.sdk.ObjectStoragePath`. A URI goes through Airflow's object
storage first, so a scheme a provider registers (``s3`` with an ``aws_default`` connection, or
``s3://my_conn@bucket/key``) uses Airflow connections; a scheme Airflow has no filesystem for
(``memory://``, or any other fsspec protocol) is opened with fsspec directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

    from airflow_provider_prefs.models import ChangeOutcome

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_storage_location(value: Any) -> bool:
    """True for a path object, a URI string, or a string naming a local ``.jsonl`` file."""
    if isinstance(value, Path) or hasattr(value, "fs"):  # pathlib, UPath, ObjectStoragePath
        return True
    return isinstance(value, str) and (bool(_URI.match(value)) or value.endswith(".jsonl"))


def storage_path(location: Any) -> Any:
    """A path object for ``location`` with ``open``/``is_file``/``name``, local or remote."""
    if isinstance(location, Path) or hasattr(location, "fs"):
        return location
    text = str(location)
    if not _URI.match(text):
        return Path(text)
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(text)
    try:
        path.fs  # noqa: B018 -- resolving the filesystem is the check
    except ValueError:
        # Airflow registers only "file" and the schemes of installed providers; fsspec knows the rest.
        from upath import UPath

        return UPath(text)
    return path


def open_items(items: Any) -> Iterator[Any]:
    """The items of a bulk task, checked before any request: a list (or other iterable), its JSON
    text, or a JSON Lines file (local path, URI or ``ObjectStoragePath``; streamed line by line, a
    line that is not JSON becomes that line's failure row). Anything unusable raises
    :class:`InvalidInputError` here, before anything is sent.
    """
    from airflow_provider_prefs.bulk.runner import quote_item
    from airflow_provider_prefs.errors import InvalidInputError

    if is_storage_location(items):
        try:
            path = storage_path(items)
            found = path.is_file()
        except Exception as exc:  # an unknown scheme, missing credentials, no such bucket...
            where = quote_item(str(items))
            raise InvalidInputError(f"items names a file that cannot be read: {where} ({exc})") from None
        if not found:
            raise InvalidInputError(f"items names a file that does not exist: {quote_item(str(items))}")
        return _jsonl_items(path)
    if isinstance(items, str | bytes):
        try:
            items = json.loads(items)
        except ValueError as exc:
            raise InvalidInputError(
                f"items is not a list, JSON text of a list, a .jsonl path or a URI: {quote_item(items)} ({exc})"
            ) from None
    if isinstance(items, dict | str | bytes) or not isinstance(items, Iterable):
        raise InvalidInputError(f"items must be a list of items, got {type(items).__name__}: {quote_item(items)}")
    return iter(items)


def _jsonl_items(path: Any) -> Iterator[Any]:
    from airflow_provider_prefs.bulk.runner import BadItem

    # Binary lines decoded here: the same code for local files and every fsspec filesystem.
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            line = raw.decode("utf-8", errors="replace")
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    yield BadItem(f"{path.name} line {number}", f"line {number} is not valid JSON: {exc}")


class ItemReport:
    """Writes one JSON line per finished item, ``{"target", "status", "error"}``, to ``location``.

    Opened before the first request, so an unwritable location fails the task before anything is
    sent. Items an earlier try finished (skipped on resume) get no line in a retry's report.
    """

    def __init__(self, location: Any) -> None:
        self.location = location
        self.lines = 0
        self._file: IO[bytes] | None = None

    def __enter__(self) -> ItemReport:
        """Open (and truncate) the report."""
        self._file = storage_path(self.location).open("wb")
        return self

    def write(self, outcome: ChangeOutcome) -> None:
        """Append the line of one item."""
        assert self._file is not None, "ItemReport used outside its with block"
        row = {"target": outcome.target, "status": outcome.status, "error": outcome.error}
        self._file.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        self.lines += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close (flush) the report, also when the run failed: the lines so far are kept."""
        if self._file is not None:
            self._file.close()
            self._file = None
