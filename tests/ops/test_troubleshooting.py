"""Each error the package raises maps to a plain cause, the fix and the guide section that covers it."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from usdirect.domain.redaction import redact
from usdirect.hooks.errors import (
    AuthenticationError,
    ConnectionConfigError,
    DuplicateError,
    OutcomeUnknownError,
    RateLimitExhaustedError,
    TransientExhaustedError,
    ValidationError,
)
from usdirect.mapping.errors import RejectShareExceededError
from usdirect.notifications.troubleshooting import attention, diagnose
from usdirect.settings.config import Account

ACCOUNT = Account(id="east", usdirect_conn_id="usdirect_east", warehouse_conn_id="wh_east")


@pytest.mark.parametrize(
    ("error", "cause", "fix"),
    [
        (
            AuthenticationError("Reseller Token", 401),
            "Reseller Token rejected by US Direct (401)",
            "update it on connection usdirect_east, then press Test on the connection",
        ),
        (
            AuthenticationError(
                "API Token", 401, "API Token rejected (401) on ping: the flxpoint connection 'flx_b'"
            ),
            "API Token rejected by the platform (401)",
            "update it on connection flx_b, then press Test on the connection",
        ),
        (
            AuthenticationError("Feed URL", 403),
            "Feed URL is valid but has no access to this resource at US Direct (403)",
            "ask US Direct to enable this resource for the account behind the Feed URL on connection "
            "usdirect_east, or enter the Feed URL of the entitled account there",
        ),
        (
            AuthenticationError("Feed URL", 404),
            "Feed URL rejected by US Direct (404); its key has probably changed",
            "copy the current Feed URL from the US Direct reseller portal into connection usdirect_east, "
            "then press Test on the connection",
        ),
    ],
)
def test_credential_errors_name_the_credential_and_the_connection(
    error: Exception, cause: str, fix: str
) -> None:
    found = diagnose(error, ACCOUNT, "get_invoices")
    assert (found.cause, found.fix, found.guide) == (cause, fix, "README.md#connection-not-authenticating")


@pytest.mark.parametrize(
    ("error", "operation", "section", "words"),
    [
        (
            ConnectionConfigError("Reseller Token is empty on x: enter it"),
            "get_invoices",
            "connection-not",
            "empty",
        ),
        (
            ValidationError([{"field": "ship_to.state", "message": "AK"}]),
            "send_orders",
            "orders-not",
            "ship_to",
        ),
        (OutcomeUnknownError("POST /v1/orders: timeout"), "send_orders", "orders-not", "never created twice"),
        (
            RateLimitExhaustedError("still 429", "429"),
            "get_shipments",
            "no-tracking",
            "rate_limit on connection usdirect_east",
        ),
        (
            TransientExhaustedError("still 503", "503"),
            "get_invoices",
            "invoices-not",
            "API Base URL of connection usdirect_east",
        ),
        (DuplicateError("UD-1"), "send_orders", "orders-not", "existing record"),
        (
            RejectShareExceededError("12 of 100 rows rejected"),
            "get_invoices",
            "invoices-not",
            "usdirect_rejects",
        ),
        (
            RejectShareExceededError("12 of 100 rows rejected"),
            "get_inventory",
            "inventory-not",
            "max_reject_share",
        ),
        (KeyError("x"), "get_inventory", "inventory-not", "report it with the log"),
    ],
)
def test_typed_errors_get_their_guide_section(
    error: Exception, operation: str, section: str, words: str
) -> None:
    found = diagnose(error, ACCOUNT, operation)
    assert found.guide.startswith(f"README.md#{section}")
    assert words in found.cause + " " + found.fix


def test_guard_errors_are_recognised_by_class_name() -> None:
    from usdirect.engine.guard import FeedShrinkError

    found = diagnose(FeedShrinkError("feed has 10 rows, last good 1000"), ACCOUNT, "get_inventory")
    assert found.cause.startswith("feed guard tripped")
    assert '{"allow_shrink": true}' in found.fix


def _failed_without_retry(error: Exception) -> BaseException:
    """What the failure callback receives: operation_run's AirflowFailException raised from ``error``."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        try:
            raise error
        except Exception as exc:
            raise AirflowFailException(str(exc)) from exc
    except AirflowFailException as failed:
        return failed


@pytest.mark.parametrize(
    ("error", "operation", "cause"),
    [
        (
            "shrink",
            "get_inventory",
            "feed guard tripped, nothing was archived or zeroed: The inventory feed has 400 SKUs, 60.0% "
            "fewer than the 1,000",
        ),
        ("rejects", "get_invoices", "too many rows were rejected for the run to be trusted: 12 of 100"),
        ("auth", "get_invoices", "Reseller Token rejected by US Direct (401)"),
        ("config", "send_orders", "the usdirect config file is invalid: usdirect.yaml:57: operations"),
        ("base", "get_inventory", "the earlier complete feed this run builds on was replaced while it ran"),
    ],
)
def test_errors_failed_without_retries_are_diagnosed_by_their_typed_cause(
    error: str, operation: str, cause: str
) -> None:
    from usdirect.engine.guard import check_feed_size
    from usdirect.engine.reuse import BaseChangedError
    from usdirect.settings.config import ConfigError

    typed: dict[str, Callable[[], Exception]] = {
        "rejects": lambda: RejectShareExceededError("12 of 100 rows rejected"),
        "auth": lambda: AuthenticationError("Reseller Token", 401),
        "config": lambda: ConfigError("usdirect.yaml:57: operations.send_orders.max_worker is not a setting"),
        "base": lambda: BaseChangedError("base replaced"),
    }
    if error == "shrink":
        with pytest.raises(Exception) as caught:
            check_feed_size(400, 1000, 0.2, allow_shrink=False)
        raised: Exception = caught.value  # type: ignore[assignment]
    else:
        raised = typed[error]()
    found = diagnose(_failed_without_retry(raised), ACCOUNT, operation)
    assert found.cause.startswith(cause), found.cause
    assert "AirflowFailException" not in found.cause + found.fix
    if error == "shrink":
        assert '{"allow_shrink": true}' in found.fix and found.section == "inventory"


def test_missing_connection_says_which_one_to_create() -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    found = diagnose(
        AirflowNotFoundException("The conn_id `usdirect_east` isn't defined"), ACCOUNT, "send_orders"
    )
    assert found.cause == "connection usdirect_east does not exist in this Airflow"
    assert found.guide == "README.md#tasks-stay-queued-or-a-connection-is-missing"


def test_redact_strips_url_keys_and_known_secrets() -> None:
    text = "GET https://feeds.example/inv.csv?key=abc123 failed; Bearer s3cr3t-token"
    assert redact(text, ["s3cr3t-token"]) == "GET https://feeds.example/inv.csv?*** failed; Bearer ***"


def test_attention_reasons_have_fixes_and_unknown_reasons_are_refused() -> None:
    assert attention("invoices_overdue", "3 POs", "get_invoices").guide.endswith(
        "invoices-not-pulling-or-not-mapping"
    )
    assert attention("reject_share_high", "7%", "get_inventory").section == "inventory"
    with pytest.raises(ValueError, match="unknown attention reason"):
        attention("cosmic_rays", "?", "get_inventory")


def test_reject_share_error_from_the_mapping_layer_is_diagnosed() -> None:
    from usdirect.domain.rejects import REJECT_SCHEMA
    from usdirect.mapping import check_reject_share

    rejects = pa.table(
        {
            "operation": ["inventory"] * 3,
            "row_number": [1, 2, 3],
            "key": ["a", "b", "c"],
            "reason": ["bad cost"] * 3,
            "raw": ["{}"] * 3,
        },
        schema=REJECT_SCHEMA,
    )
    with pytest.raises(Exception) as caught:
        check_reject_share(10, rejects, 0.05)
    found = diagnose(caught.value, ACCOUNT, "get_inventory")
    assert found.cause.startswith("too many rows were rejected")
    assert "bad cost" in found.cause


def test_duckdb_out_of_memory_names_the_cap_and_the_setting() -> None:
    import duckdb

    from usdirect.operators.base import _explained

    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '1MB'")
    with pytest.raises(duckdb.Error) as caught:
        con.execute("CREATE TABLE t AS SELECT i, repeat('x', 100) || i AS s FROM range(300000) t(i)")
        con.execute("CREATE UNIQUE INDEX u ON t (s)")
    explained = _explained(caught.value)
    assert explained is not None
    found = diagnose(_failed_without_retry(explained), ACCOUNT, "get_inventory")
    assert found.cause.startswith("DuckDB ran out of memory under its cap (Out of Memory Error"), found.cause
    assert "memory.engine_limit" in found.cause and "partition_rows" in found.fix
    assert found.section == "inventory"
