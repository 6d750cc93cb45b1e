"""Fixtures for the sandbox's own tests: one unthrottled instance per module, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.runner import SandboxInfo, start_sandbox

UNTHROTTLED = {"catalog_size": 2000, "seed": 42, "feed_limit": 0, "rate_limit": 0, "platform_rate_limit": 0}


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[SandboxInfo]:
    with start_sandbox(**UNTHROTTLED) as info:
        yield info


@pytest.fixture
def sb(module_sandbox: SandboxInfo) -> SandboxInfo:
    """The module's sandbox, back in its start state (limits off so tests can fire freely)."""
    module_sandbox.reset()
    return module_sandbox


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c
