"""`make airflow` compiles a site-packages folder that was installed without bytecode, once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from scripts.local_bytecode import compile_site, uncompiled_site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding a package and a module, as uv installs them: source only."""
    (tmp_path / "bytecodepkg").mkdir()
    (tmp_path / "bytecodepkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "bytecodepkg" / "inner.py").write_text("VALUE = 2\n")
    (tmp_path / "bytecodemod.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def cached(source: Path) -> bool:
    return Path(importlib.util.cache_from_source(str(source))).exists()


def test_a_folder_without_bytecode_is_compiled_whole_and_then_left_alone(site: Path) -> None:
    assert uncompiled_site("bytecodepkg") == site
    compile_site(site)
    assert cached(site / "bytecodepkg" / "__init__.py")
    assert cached(site / "bytecodepkg" / "inner.py")
    assert cached(site / "bytecodemod.py")
    assert uncompiled_site("bytecodepkg") is None


def test_a_package_that_is_not_installed_asks_for_nothing() -> None:
    assert uncompiled_site("no_such_package_for_bytecode") is None
