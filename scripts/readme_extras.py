"""Write the README's connection extras tables from the declarations Airflow reads (``make readme``).

Each table sits between ``<!-- extras:NAME -->`` and ``<!-- /extras:NAME -->`` in README.md, where
NAME is a connection type (its own extras) or ``transport`` (the extras both types take, from
:class:`~airflow_provider_prefs.transport.settings.TransportSettings`). ``--check`` changes nothing
and exits 1 when the README is out of date (the test suite runs the same check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT))

from airflow_provider_prefs.provider_info import RENAMED_EXTRAS, SERVICE_EXTRAS, transport_fields  # noqa: E402

BLOCK = re.compile(r"(<!-- extras:(?P<name>[\w]+) -->\n)(?P<body>.*?)(<!-- /extras:(?P=name) -->)", re.S)


def tables() -> dict[str, dict[str, dict[str, Any]]]:
    """Declared extras per README block name."""
    return {**SERVICE_EXTRAS, "transport": transport_fields()}


def type_cell(field: dict[str, Any]) -> str:
    """The "type" column: an enum's values, URL, a range, or the JSON type with its unit."""
    schema = field["schema"]
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("format") == "url":
        return "URL"
    if schema.get("format") == "password":
        return "secret string"
    kind = next(t for t in (schema["type"] if isinstance(schema["type"], list) else [schema["type"]]) if t != "null")
    if "minimum" in schema and "maximum" in schema:
        return f"{kind} {schema['minimum']}-{schema['maximum']}"
    if kind == "number" and field["label"].endswith("(s)"):
        return "number (s)"
    return str(kind)


def default_cell(field: dict[str, Any]) -> str:
    """The "default" column: ``required`` when the form cannot leave it empty, else the default or a dash."""
    schema = field["schema"]
    if "null" not in (schema["type"] if isinstance(schema["type"], list) else [schema["type"]]):
        return "required"
    default = schema.get("default")
    if default is None:
        return "—"
    return f"`{json.dumps(default)}`"


def render(name: str) -> str:
    """The markdown table of one block."""
    renamed = {new: old for old, new in RENAMED_EXTRAS.get(name, {}).items()}
    lines = ["| extra | type | default | meaning |", "|---|---|---|---|"]
    for key, field in tables()[name].items():
        meaning = field.get("description", "")
        if key in renamed:
            meaning += f" Formerly `{renamed[key]}`, still read (the new name wins when both are set)."
        lines.append(f"| `{key}` | {type_cell(field)} | {default_cell(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def updated(text: str) -> str:
    """``text`` (the README) with every extras block regenerated; an unknown block name is an error."""
    known = tables()
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in known:
            raise SystemExit(f"README block extras:{name} names no connection type; known: {', '.join(known)}")
        seen.add(name)
        return f"{match.group(1)}{render(name)}{match.group(4)}"

    result = BLOCK.sub(replace, text)
    missing = sorted(set(known) - seen)
    if missing:
        raise SystemExit(f"README has no extras block for {', '.join(missing)}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md, or with ``--check`` report whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print("README.md extras tables are out of date: run `make readme`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        README.write_text(new)
        print("README.md extras tables regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
