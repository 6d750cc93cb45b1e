"""Fixtures for the hook tests: connections to a sandbox with short retry backoffs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.hooks import set_connections


@pytest.fixture
def use_sandbox(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, dict]]:
    """``use_sandbox(info, usdirect={...}, flxpoint={...}, fast=True)``: see ``set_connections``."""

    def use(info, **kwargs) -> dict[str, dict]:
        return set_connections(monkeypatch, info, **kwargs)

    return use
