"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

This is what makes the ``usdirect`` and ``flxpoint`` connection types (and their form fields)
appear in the UI; a plain ``plugins/`` copy cannot register connection types. Kept free of
imports so provider discovery stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SECRET = {"type": ["string", "null"], "format": "password"}
_CA_BUNDLE = {
    "label": "CA bundle (path)",
    "description": "PEM file of CA certificates to verify TLS with instead of the system store.",
    "schema": {"type": ["string", "null"]},
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "usdirect-airflow",
        "name": "US Direct",
        "description": "US Direct dropship supplier: inventory feed, orders, shipments and invoices.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "usdirect",
                "hook-class-name": "usdirect.hooks.usdirect.UsDirectHook",
                "hook-name": "US Direct",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "API Base URL", "password": "API Token"},
                    "placeholders": {
                        "host": "https://api.usdirect.example",
                        "password": "API Token from the US Direct reseller portal",
                        "extra": '{"feed_url": "...", "reseller_token": "..."} (or use the fields above)',
                        "feed_url": "https://feeds.usdirect.example/inventory.csv?key=...",
                        "reseller_token": "Reseller Token (needed by Get Invoice)",
                        "rate_limit": "5",
                        "timeout": "30",
                        "ca_bundle": "/etc/ssl/certs/company-ca.pem (optional)",
                    },
                },
                "conn-fields": {
                    "feed_url": {
                        "label": "Feed URL",
                        "description": "Full inventory feed URL; it embeds its own key, so it is a secret.",
                        "schema": _SECRET,
                    },
                    "reseller_token": {
                        "label": "Reseller Token",
                        "description": "Sent as X-Reseller-Token; Get Invoice needs it.",
                        "schema": _SECRET,
                    },
                    "rate_limit": {
                        "label": "Rate limit (requests/second)",
                        "description": "Client-side limit per API Token. US Direct allows 5.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "timeout": {
                        "label": "Read timeout (seconds)",
                        "description": "Per-request read timeout.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "ca_bundle": _CA_BUNDLE,
                },
            },
            {
                "connection-type": "flxpoint",
                "hook-class-name": "usdirect.hooks.flxpoint.FlxpointHook",
                "hook-name": "Flxpoint-like platform",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "API Base URL", "password": "API Token"},
                    "placeholders": {
                        "host": "https://api.flxpoint.example",
                        "password": "X-API-TOKEN of the platform account",
                        "rate_limit": "2",
                        "timeout": "30",
                        "ca_bundle": "/etc/ssl/certs/company-ca.pem (optional)",
                    },
                },
                "conn-fields": {
                    "rate_limit": {
                        "label": "Rate limit (requests/second)",
                        "description": "Client-side limit per API token. The platform allows 2.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "timeout": {
                        "label": "Read timeout (seconds)",
                        "description": "Per-request read timeout.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "ca_bundle": _CA_BUNDLE,
                },
            },
        ],
    }
