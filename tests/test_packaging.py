"""Packaging: pyproject declares what the package imports, the lock pins it, the version is written once.

A user installing the package into their own Airflow gets only what pyproject.toml declares, not
this repository's requirements files; an undeclared import works here and fails there.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import usdirect
from scripts.uv_index_args import uv_options
from tests.support.paths import REPO
from usdirect.get_provider_info import get_provider_info

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
FIRST_PARTY = {"usdirect", "__future__"}


def _requirements(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


DEPENDENCIES = _requirements(PROJECT["dependencies"])
EXTRAS = {extra: _requirements(specs) for extra, specs in PROJECT.get("optional-dependencies", {}).items()}


def _deferred(node: ast.AST) -> bool:
    """Code that does not run when its module is imported: function bodies, ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.If):
        return "TYPE_CHECKING" in ast.unparse(node.test)
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(module, eager) for each absolute import; eager when it runs as the module is imported."""

    def walk(node: ast.AST, eager: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield from ((alias.name, eager) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module, eager
            else:
                yield from walk(child, eager and not _deferred(child))

    yield from walk(ast.parse(path.read_text(), str(path)), True)


def _owners() -> dict[str, list[str]]:
    """Top-level import name -> the installed distributions that ship it."""
    return md.packages_distributions()


def _distribution(module: str, owners: dict[str, list[str]]) -> str | None:
    """The distribution whose files hold ``module`` (the longest dotted prefix, for namespace packages)."""
    candidates = owners.get(module.split(".")[0], [])
    if len(candidates) <= 1:
        return canonicalize_name(candidates[0]) if candidates else None
    best, best_depth = None, -1
    for name in candidates:
        for file in md.distribution(name).files or []:
            if file.suffix != ".py":
                continue
            parts = file.with_suffix("").parts
            dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if (module == dotted or module.startswith(dotted + ".")) and dotted.count(".") > best_depth:
                best, best_depth = name, dotted.count(".")
    return canonicalize_name(best) if best else None


def _third_party_imports() -> Iterator[tuple[Path, str, bool]]:
    for root in ("plugins", "dags"):
        for path in sorted((REPO / root).rglob("*.py")):
            for module, eager in _imports(path):
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    yield path, module, eager


def test_every_import_in_the_package_and_dags_is_declared():
    owners = _owners()
    optional = {name for reqs in EXTRAS.values() for name in reqs}
    missing = []
    for path, module, eager in _third_party_imports():
        dist = _distribution(module, owners)
        declared = DEPENDENCIES.keys() if eager else DEPENDENCIES.keys() | optional
        if dist not in declared:
            where = "dependencies" if eager else "dependencies or an extra"
            missing.append(f"{path.relative_to(REPO)}: {module} ({dist or 'not installed'}) not in {where}")
    assert not missing, "\n".join(missing)


def test_the_import_check_sees_namespace_packages_and_lazy_imports(tmp_path):
    """The check above can fail: a provider module maps to its own distribution, lazy imports are lazy."""
    source = tmp_path / "m.py"
    source.write_text(
        "import yaml\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import pandas\n"
        "def f():\n    from airflow.providers.slack.notifications.slack_webhook import X\n"
    )
    assert list(_imports(source)) == [
        ("yaml", True),
        ("typing", True),
        ("pandas", False),
        ("airflow.providers.slack.notifications.slack_webhook", False),
    ]
    owners = _owners()
    assert _distribution("airflow.providers.slack.notifications.slack_webhook", owners) == (
        "apache-airflow-providers-slack"
    )
    assert _distribution("airflow.sdk", owners) == "apache-airflow-task-sdk"
    assert _distribution("yaml", owners) == "pyyaml"


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = str(req.specifier).removeprefix("==")
    return pins


def test_the_lock_satisfies_every_declared_range():
    lock = _lock()
    for req in [*DEPENDENCIES.values(), *(r for reqs in EXTRAS.values() for r in reqs.values())]:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} is declared but not locked in constraints.txt"
        assert req.specifier.contains(lock[name]), f"{req} is declared; constraints.txt locks {lock[name]}"


@pytest.mark.parametrize(
    "requirements", ["requirements.txt", "requirements-dev.txt", "requirements-bench.txt"]
)
def test_requirements_files_pin_what_the_lock_pins(requirements):
    lock = _lock()
    for line in (REPO / requirements).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            assert f"=={lock.get(canonicalize_name(req.name))}" == str(req.specifier), (
                f"{requirements}: {req} but constraints.txt locks {lock.get(canonicalize_name(req.name))}"
            )


def test_the_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "usdirect.get_provider_info.__version__"
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", usdirect.__version__)
    assert get_provider_info()["versions"] == [usdirect.__version__]
    # The installed metadata (`make` re-installs when get_provider_info.py changes).
    assert md.version("usdirect-airflow") == usdirect.__version__


def test_uv_gets_the_index_pip_is_configured_with():
    listed = [
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
        "global.index-url='https://global.example/simple'",
        "install.index-url='https://install.example/simple'",
        ":env:.find-links='/opt/wheels'",
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
    ]
    assert uv_options(listed) == [
        "--index-url",
        "https://install.example/simple",
        "--extra-index-url",
        "file:///opt/a/simple",
        "--extra-index-url",
        "file:///opt/b/simple",
        "--find-links",
        "/opt/wheels",
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert uv_options([":env:.index-url='https://env.example/simple'", *listed])[:2] == [
        "--index-url",
        "https://env.example/simple",
    ]
    assert uv_options(["global.cert='/etc/ssl/certs/ca-certificates.crt'"]) == []
