"""The US Direct connection form in the real Airflow UI, driven by headless Debian Chromium.

Adds a connection of type US Direct, checks the API Token / Feed URL / Reseller Token fields are
there, saves it, presses Test in the connection list and reads the message; then the same with a
wrong Reseller Token, whose message must name it. Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.airflow_stack import ARTIFACTS, AirflowStack

pytestmark = pytest.mark.e2e


def add_usdirect_connection(
    page: Any, stack: AirflowStack, conn_id: str, reseller_token: str, shot: str
) -> None:
    """Fill and save the Add Connection form; asserts the US Direct fields are offered."""
    conn = stack.sandbox.connections()["usdirect_default"]
    page.goto(f"{stack.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    kind = dialog.get_by_role("combobox")
    kind.click()
    kind.fill("US Direct")
    page.get_by_role("option", name="US Direct", exact=True).click()
    seen: list[str] = []
    show(dialog, "Standard Fields", "input[name=host]")
    seen += dialog.locator("label").all_inner_texts()
    dialog.locator("input[name=host]").fill(conn["host"])
    dialog.locator("input[name=password]").fill(conn["password"])
    show(dialog, "Extra Fields", "#element_feed_url")
    seen += dialog.locator("label").all_inner_texts()
    dialog.locator("#element_feed_url").fill(conn["extra"]["feed_url"])
    dialog.locator("#element_reseller_token").fill(reseller_token)
    for label in ("API Base URL", "API Token", "Feed URL", "Reseller Token"):
        assert any(text.strip() == label for text in seen), f"{label!r} missing from the form: {seen}"
    assert dialog.locator("#element_reseller_token").get_attribute("type") == "password"
    page.screenshot(path=str(ARTIFACTS / f"{shot}-form.png"), full_page=True)
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text=conn_id).wait_for()


def show(dialog: Any, section: str, field: str) -> None:
    """Open an accordion section of the form unless its field is already visible."""
    if not dialog.locator(field).is_visible():
        dialog.get_by_text(section, exact=True).click()
    dialog.locator(field).wait_for(state="visible")


def press_test(page: Any, conn_id: str, expect_title: str, shot: str) -> str:
    """Press Test on the connection's row; returns the text of the toast that answers."""
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text=expect_title).first
    toast.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / f"{shot}-test.png"), full_page=True)
    return toast.inner_text()


def test_connection_form_saves_and_tests_ok(browser_page: Any, airflow_stack: AirflowStack) -> None:
    token = airflow_stack.sandbox.reseller_token
    add_usdirect_connection(browser_page, airflow_stack, "usdirect_ui_ok", token, "connection-ok")
    message = press_test(browser_page, "usdirect_ui_ok", "Test Connection Successful", "connection-ok")
    assert "API Token OK" in message
    assert re.search(r"Feed URL OK", message)
    assert "Reseller Token OK" in message
    for secret in (token, airflow_stack.sandbox.api_token, airflow_stack.sandbox.feed_url):
        assert secret not in message
    shown = json.dumps(airflow_stack.api("GET", "connections/usdirect_ui_ok"))
    feed_key = airflow_stack.sandbox.feed_url.split("key=", 1)[1]
    for secret in (token, airflow_stack.sandbox.api_token, feed_key):
        assert secret not in shown, "the REST API (and so the UI) must mask every credential"


def test_wrong_reseller_token_is_named_in_the_test_message(
    browser_page: Any, airflow_stack: AirflowStack
) -> None:
    wrong = "not-the-reseller-token-0000"
    add_usdirect_connection(browser_page, airflow_stack, "usdirect_ui_wrong", wrong, "connection-wrong")
    message = press_test(browser_page, "usdirect_ui_wrong", "Test Connection Failed", "connection-wrong")
    assert "Reseller Token" in message
    assert "on the usdirect connection 'usdirect_ui_wrong'" in message, (
        "the message names the connection being edited, not the random-id copy Airflow tests"
    )
    assert "API Token OK" in message, "the other credentials are still reported as fine"
    assert wrong not in message
