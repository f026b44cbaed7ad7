"""Provider registration as the real Airflow sees it, and the cost of importing us in a DAG file."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_provider_prefs.provider_info import get_provider_info

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_entry_point_is_registered() -> None:
    points = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_prefs")
    ]
    assert [ep.load()()["package-name"] for ep in points] == ["airflow-provider-prefs"]


def test_provider_info_matches_airflows_schema() -> None:
    import jsonschema
    from airflow import providers_manager

    schema_path = Path(providers_manager.__file__).with_name("provider_info.schema.json")
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


def test_airflow_cli_lists_both_connection_types() -> None:
    out = subprocess.run(
        [AIRFLOW, "providers", "hooks", "--output", "json"], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    hooks = {row["connection_type"]: row for row in json.loads(out[out.index("[") :])}
    assert hooks["adobe_offer_library"]["class"] == "airflow_provider_prefs.hooks.offer_library.OfferLibraryHook"
    assert hooks["mypreferences"]["class"] == "airflow_provider_prefs.hooks.mypreferences.MyPreferencesHook"
    assert hooks["mypreferences"]["package_name"] == "airflow-provider-prefs"


def test_providers_manager_builds_the_connection_forms() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-prefs" in manager.providers
    widgets = manager.connection_form_widgets
    for field in ("ims_org_id", "sandbox_name", "scopes", "ims_endpoint", "timeout", "pool_size"):
        assert f"extra__adobe_offer_library__{field}" in widgets
    for field in ("client_id", "environment", "profile_path", "auth_type", "oauth_endpoint", "test_alternate_id"):
        assert f"extra__mypreferences__{field}" in widgets
    behaviour = manager.field_behaviours["adobe_offer_library"]
    assert behaviour["relabeling"]["password"] == "Client secret"
    assert "port" in behaviour["hidden_fields"]


@pytest.mark.parametrize("module", ["airflow_provider_prefs.operators", "airflow_provider_prefs.sensors"])
def test_dag_file_imports_stay_light(module: str) -> None:
    """Importing operators/sensors must not drag in the HTTP stack, jsonpatch or the sandbox."""
    code = (
        "import sys\n"
        "import airflow.sdk\n"  # what a DAG file imports first
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "heavy = {'requests', 'httpx', 'jsonpatch', 'fastapi', 'uvicorn', 'airflow_provider_prefs.hooks.base'}\n"
        "print(sorted(heavy & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_example_dags_parse_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags_examples"))
    assert bag.import_errors == {}
    assert {"scheduled_offer_refresh", "profile_preferences_sync", "bulk_profile_patch"} <= set(bag.dag_ids)


def test_provider_info_lists_every_public_operator_sensor_and_trigger() -> None:
    import airflow_provider_prefs.operators as operators
    import airflow_provider_prefs.sensors as sensors

    info = get_provider_info()
    registered = {
        kind: {module for entry in info[kind] for module in entry["python-modules"]}
        for kind in ("operators", "sensors", "triggers", "hooks")
    }
    for name in operators.__all__:
        assert getattr(operators, name).__module__ in registered["operators"], name
    for name in sensors.__all__:
        assert getattr(sensors, name).__module__ in registered["sensors"], name
    assert "airflow_provider_prefs.triggers.profile_status" in registered["triggers"]


def test_version_has_one_source() -> None:
    from importlib.metadata import version

    import airflow_provider_prefs

    assert version("airflow-provider-prefs") == airflow_provider_prefs.__version__ == get_provider_info()["versions"][0]


def _config_env(airflow_home: Path) -> dict[str, str]:
    """The test environment with a fresh AIRFLOW_HOME and no ``[prefs]`` setting: the declared defaults apply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__PREFS__") and k != "AIRFLOW_CONFIG"}
    env["AIRFLOW_HOME"] = str(airflow_home)
    return env


def test_airflow_config_lists_the_prefs_options_with_their_defaults(tmp_path: Path) -> None:
    env = _config_env(tmp_path)
    listed = subprocess.run(
        [AIRFLOW, "config", "list", "--section", "prefs", "--show-values", "--include-descriptions"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    default_dir = f"{tmp_path}/.cache/airflow_provider_prefs/tokens"
    assert "[prefs]" in listed
    assert f"token_cache_dir = {default_dir}" in listed.splitlines()
    assert "token cache" in listed  # the option's description
    value = subprocess.run(
        [AIRFLOW, "config", "get-value", "prefs", "token_cache_dir"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert value.strip().splitlines()[-1] == default_dir


def test_the_declared_default_is_the_directory_the_token_cache_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.configuration import conf

    from airflow_provider_prefs.transport.token_cache import default_directory

    monkeypatch.delenv("AIRFLOW__PREFS__TOKEN_CACHE_DIR", raising=False)
    expected = Path(os.environ["AIRFLOW_HOME"]) / ".cache" / "airflow_provider_prefs" / "tokens"
    assert Path(conf.get("prefs", "token_cache_dir")) == expected
    assert default_directory() == expected
    monkeypatch.setenv("AIRFLOW__PREFS__TOKEN_CACHE_DIR", "/somewhere/else")
    assert default_directory() == Path("/somewhere/else")


def _prefs_options_read() -> set[str]:
    """Every ``[prefs]`` key the package reads with ``conf.get*(section, key)`` (names resolved in their module)."""
    package = Path(__file__).resolve().parents[1] / "airflow_provider_prefs"
    found: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        module = None
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("get")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "conf"
                and len(node.args) >= 2
            ):
                continue
            if module is None:
                name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
                module = importlib.import_module(name)
            section, key = (
                arg.value if isinstance(arg, ast.Constant) else getattr(module, arg.id)  # type: ignore[attr-defined]
                for arg in node.args[:2]
            )
            if section == "prefs":
                found.add(str(key))
    return found


def test_every_prefs_option_the_code_reads_is_declared() -> None:
    read = _prefs_options_read()
    assert "token_cache_dir" in read
    declared = get_provider_info()["config"]["prefs"]["options"]
    assert set(declared) == read
    for option in declared.values():
        assert set(option) >= {"description", "version_added", "type", "example", "default"}


#: Distributions the provider may import only lazily (inside a function), each from the extra that installs it.
OPTIONAL_DISTRIBUTIONS = {"apache-airflow-providers-openlineage": "openlineage"}
#: What the ``apache-airflow`` requirement installs with it (the meta package pins exactly these two).
AIRFLOW_PARTS = {"apache-airflow-core", "apache-airflow-task-sdk"}


def _normalized(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_requirements() -> tuple[set[str], dict[str, set[str]]]:
    """Names of the installed package's requirements: the unconditional ones, and those of each extra."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    core: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in requires("airflow-provider-prefs") or []:
        requirement = Requirement(line)
        name = _normalized(requirement.name)
        marker = str(requirement.marker or "")
        if "extra ==" in marker:
            extras.setdefault(marker.split("==")[1].strip().strip("\"'"), set()).add(name)
        else:
            core.add(name)
    return core, extras


def _third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    """Each third-party module the package imports (``airflow.*`` by full name, others by top level), with
    where it is imported and whether that import is lazy (inside a function)."""
    package = Path(__file__).resolve().parents[1] / "airflow_provider_prefs"
    found: dict[str, list[tuple[str, bool]]] = {}

    def visit(node: ast.AST, where: str, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            else:
                names = []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "airflow_provider_prefs":
                    found.setdefault(name if top == "airflow" else top, []).append((where, lazy))
            visit(child, where, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    for path in sorted(package.rglob("*.py")):
        visit(ast.parse(path.read_text()), str(path.relative_to(package.parent)), False)
    return found


def _distribution_of(module: str) -> str:
    """The installed distribution that provides ``module`` (by the files it installed)."""
    import importlib.util
    from importlib.metadata import distribution, packages_distributions

    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is imported but not installed"
    candidates = packages_distributions().get(module.split(".")[0], [])
    if spec.origin is None or len(candidates) == 1:
        assert len(candidates) == 1, f"{module}: {candidates}"
        return _normalized(candidates[0])
    origin = Path(spec.origin).resolve()
    for name in candidates:
        dist = distribution(name)
        if any(Path(str(dist.locate_file(file))).resolve() == origin for file in dist.files or []):
            return _normalized(name)
    raise AssertionError(f"no installed distribution owns {module} ({origin})")


def test_every_third_party_import_is_a_declared_dependency() -> None:
    core, extras = _declared_requirements()
    if "apache-airflow" in core:
        core |= AIRFLOW_PARTS
    imports = _third_party_imports()
    assert {"httpx", "jsonpatch", "jsonpointer", "cryptography", "airflow.sdk"} <= set(imports)  # the scan works
    problems = []
    for module, places in sorted(imports.items()):
        dist = _distribution_of(module)
        if dist in core:
            continue
        extra = OPTIONAL_DISTRIBUTIONS.get(dist)
        if extra is None or dist not in extras.get(extra, set()):
            problems.append(f"{module} ({dist}) is imported by {places[0][0]} but not declared in dependencies")
        elif not all(lazy for _, lazy in places):
            eager = next(where for where, lazy in places if not lazy)
            problems.append(f"{module} ({dist}, extra {extra!r}) is imported at module level by {eager}")
    assert problems == []
    # The token cache (every OAuth connection) encrypts with it: never an optional path.
    assert "cryptography" in core


def test_the_supported_airflow_floor_is_the_tested_version() -> None:
    """``apache-airflow>=X`` names the version ``constraints.txt`` pins, which every test runs against."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    pinned = next(
        line.split("==", 1)[1].strip()
        for line in (Path(__file__).resolve().parents[1] / "constraints.txt").read_text().splitlines()
        if line.startswith("apache-airflow==")
    )
    airflow = [
        Requirement(r) for r in requires("airflow-provider-prefs") or [] if Requirement(r).name == "apache-airflow"
    ]
    assert [str(r.specifier) for r in airflow] == [f">={pinned}"]
