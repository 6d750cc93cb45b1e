"""The mapping templates an operation's DAGs use, checked when the DAG file is parsed.

A template edit with a typo used to surface only when a task ran, after its retries; checked here,
it shows in the UI at once, naming the template's file, line and fix: as an import error when every
account of the DAG file uses the template, else as the broken accounts' stand-in DAGs
(``usdirect.operators.broken_template``). Only the YAML shape is checked (no Arrow, no data) so
parsing stays fast; tasks compile the template fully.
"""

from __future__ import annotations

from pathlib import Path

from usdirect.domain.operations import SPECS
from usdirect.mapping.errors import TemplateError
from usdirect.mapping.spec_check import check_template_spec
from usdirect.mapping.yaml_lines import load_located_yaml
from usdirect.settings.config import Account, Config, ConfigError
from usdirect.settings.errors import issue_at


def template_problems(cfg: Config, operation: str) -> dict[str, ConfigError | TemplateError]:
    """What is wrong with each account's template for ``operation``, by account id (each file is
    checked once, however many accounts use it); accounts whose template is fine are left out."""
    checked: dict[Path, ConfigError | TemplateError | None] = {}
    problems: dict[str, ConfigError | TemplateError] = {}
    for index, account in enumerate(cfg.accounts):
        path = cfg.template_path(account, operation)
        if path not in checked:
            checked[path] = _problem(cfg, account, index, operation)
        if (problem := checked[path]) is not None:
            problems[account.id] = problem
    return problems


def account_template_problem(
    cfg: Config, account: Account, operation: str
) -> ConfigError | TemplateError | None:
    """What is wrong with one account's template for ``operation`` now, or None."""
    return _problem(cfg, account, cfg.accounts.index(account), operation)


def _problem(cfg: Config, account: Account, index: int, operation: str) -> ConfigError | TemplateError | None:
    if not cfg.template_path(account, operation).is_file():
        return _missing(cfg, account, index, operation)
    try:
        check_template_spec(cfg.template_path(account, operation), SPECS[operation].template_kind)
    except TemplateError as exc:
        return exc
    return None


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
