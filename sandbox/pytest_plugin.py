"""Pytest fixtures that start the sandbox servers on free ports.

`sandbox` is shared by the whole session (catalog 2,000, seed 42, feed download limit off so
that tests may download often); tests that change state in ways others would notice, or need
faults or other options, use `sandbox_factory(**options)` for a private instance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from sandbox.runner import SandboxInfo, start_sandbox

DEFAULTS: dict[str, Any] = {"catalog_size": 2000, "seed": 42, "feed_limit": 0}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxInfo]:
    """Both servers for the whole test session."""
    with start_sandbox(**DEFAULTS) as info:
        yield info


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxInfo]]:
    """`sandbox_factory(**options) -> SandboxInfo`: a private sandbox, stopped at the end of the test."""
    with ExitStack() as stack:

        def start(**options: Any) -> SandboxInfo:
            return stack.enter_context(start_sandbox(**(DEFAULTS | options)))

        yield start


@pytest.fixture
def sandbox_connections(sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """Set AIRFLOW_CONN_USDIRECT_DEFAULT / AIRFLOW_CONN_FLXPOINT_DEFAULT to the session sandbox."""
    connections = sandbox.connections()
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return connections
