"""The mapping templates an operation's DAGs use, checked when the DAG file is parsed.

A template edit with a typo used to surface only when a task ran, after its retries; checked here,
it is an import error in the UI at once, naming the template's file, line and fix. Only the YAML
shape is checked (no Arrow, no data) so parsing stays fast; tasks compile the template fully.
"""

from __future__ import annotations

from usdirect.config import Account, Config, ConfigError
from usdirect.config_errors import issue_at
from usdirect.mapping.spec_check import check_template_spec
from usdirect.mapping.yaml_lines import load_located_yaml

# The template kind (its `operation:`) each DAG operation maps with.
TEMPLATE_KIND = {
    "get_inventory": "inventory",
    "get_inventory_changes": "inventory",
    "send_orders": "orders",
    "get_shipments": "shipments",
    "get_invoices": "invoices",
}


def check_templates(cfg: Config, operation: str) -> None:
    """Raise ``ConfigError`` for a template file that is missing, ``TemplateError`` for a broken one."""
    seen = set()
    for index, account in enumerate(cfg.accounts):
        path = cfg.template_path(account, operation)
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            raise _missing(cfg, account, index, operation)
        check_template_spec(path, TEMPLATE_KIND[operation])


def _missing(cfg: Config, account: Account, index: int, operation: str) -> ConfigError:
    if operation in account.templates:
        setting: tuple[str | int, ...] = ("accounts", index, "templates", operation)
        written = account.templates[operation]
    else:
        setting = ("operations", operation, "template")
        written = cfg.operations[operation].template
    where = ".".join(map(str, setting))
    issue = issue_at(
        load_located_yaml(cfg.path),
        setting,
        f"{where}: template {written!r} not found ({cfg.template_path(account, operation)})",
        "give the template's path relative to this settings file's folder, e.g. mappings/inventory.yaml",
    )
    return ConfigError.of([issue])
