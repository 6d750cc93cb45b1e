"""Helpers shared by the sandbox's tests (headers per credential, error-shape assertion)."""

from __future__ import annotations

import httpx

from sandbox.runner import SandboxInfo


def api(sb: SandboxInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {sb.api_token}"}


def reseller(sb: SandboxInfo) -> dict[str, str]:
    return {"X-Reseller-Token": sb.reseller_token}


def platform(sb: SandboxInfo) -> dict[str, str]:
    return {"X-API-TOKEN": sb.platform_token}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The contracts' error shape with this status and code; returns the error object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error
