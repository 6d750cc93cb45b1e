"""The settings file: bundled defaults, overrides and the errors a user meets after a typo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from usdirect.settings.config import ConfigError, load_config

BUNDLED = Path(__file__).resolve().parent.parent / "include" / "usdirect.yaml"


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(BUNDLED.read_text())
    mutate(raw)
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bundled_config_defaults() -> None:
    cfg = load_config(BUNDLED)
    main = cfg.accounts[0]
    assert cfg.dag_id(main, "get_inventory") == "usdirect_get_inventory"
    assert main.usdirect_conn_id == "usdirect_default"
    assert main.warehouse_conn_id == "usdirect_warehouse"
    assert cfg.operations["get_inventory_changes"].schedule == "*/15 * * * *"
    assert cfg.operations["get_inventory"].max_shrink_share == 0.20
    assert cfg.template_path(main, "get_inventory") == BUNDLED.parent / "mappings" / "inventory.yaml"


def test_second_account_gets_qualified_dag_ids_and_own_template(tmp_path: Path) -> None:
    def add(raw: dict) -> None:
        raw["accounts"].append(
            {
                "id": "west",
                "usdirect_conn_id": "usdirect_west",
                "warehouse_schema": "west",
                "templates": {"get_inventory": "west.yaml"},
            }
        )

    cfg = load_config(_write(tmp_path, add))
    west = cfg.accounts[1]
    assert cfg.dag_id(west, "send_orders") == "usdirect_west_send_orders"
    assert cfg.template_path(west, "get_inventory") == tmp_path / "west.yaml"


def test_targets_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(BUNDLED)
    monkeypatch.setenv("USDIRECT_TARGETS", "warehouse, platform")
    assert cfg.targets(cfg.accounts[0]) == ("warehouse", "platform")
    monkeypatch.setenv("USDIRECT_TARGETS", "warehouse,s3")
    with pytest.raises(ConfigError, match="USDIRECT_TARGETS"):
        cfg.targets(cfg.accounts[0])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["operations"]["get_inventory"].update(max_shrink_share=2), "max_shrink_share"),
        (lambda r: r["operations"]["get_inventory"].update(shedule="x"), "shedule"),
        (lambda r: r["operations"].pop("send_orders"), "missing operation"),
        (lambda r: r["accounts"][0].update(targets=["ftp"]), "targets"),
        (lambda r: r["accounts"].append(dict(r["accounts"][0])), "unique ids"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, mutate, expected: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="USDIRECT_CONFIG"):
        load_config(tmp_path / "nope.yaml")


def _edit(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The bundled settings with one text edit (comments and layout kept), and the edited line."""
    text = BUNDLED.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "usdirect.yaml"
    path.write_text(text.replace(old, new))
    return path, text[: text.index(old)].count("\n") + 1


def _set_schedule(tmp_path: Path, operation: str, value: str) -> tuple[Path, int]:
    """The bundled settings with one operation's `schedule:` line rewritten, and that line's number."""
    lines = BUNDLED.read_text().splitlines(keepends=True)
    start = lines.index(next(x for x in lines if x.startswith(f"  {operation}:")))
    index = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("schedule:"))
    lines[index] = f"    schedule: {value}\n"
    path = tmp_path / "usdirect.yaml"
    path.write_text("".join(lines))
    return path, index + 1


def test_settings_typo_names_line_key_and_the_setting_meant(tmp_path: Path) -> None:
    path, line = _edit(tmp_path, "    max_workers: 4", "    max_worker: 4")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}:{line}: operations.send_orders.max_worker is not a setting. "
        "Fix: delete it or correct the key (did you mean 'max_workers'?)"
    )


@pytest.mark.parametrize(
    ("old", "new", "below", "words"),
    [
        (
            "  schema: null",
            "  shema: null",
            0,
            "warehouse.shema is not a setting. Fix: delete it or correct the key (did you mean 'schema'?)",
        ),
        ("    pool_slots: 3 ", "    pool_slot: 3 ", 0, "(did you mean 'pool_slots'?)"),
        (
            "  get_invoices:\n",
            "  get_invoice:\n",
            0,
            "operations.get_invoice: unknown operation(s) ['get_invoice']",
        ),
        (
            "    max_workers: 4",
            "    max_workers: 40",
            0,
            "operations.send_orders.max_workers: Input should be less than or equal to 32. "
            "Fix: write a value within the limit stated",
        ),
        (
            "    pool_slots: 3 ",
            "    templates: {get_inventroy: x.yaml}\n    pool_slots: 3 ",
            0,
            "accounts.0.templates: 'get_inventroy' is not an operation, so this template would never be "
            "used. Fix: key it by one of get_inventory, get_inventory_changes, send_orders, get_shipments, "
            "get_invoices (did you mean 'get_inventory'?)",
        ),
        (
            "      conn_id: usdirect_alerts",
            "      conn_id: usdirect_alerts\n      to: [ops@example.com]",
            1,
            "alerts.channels.0.http.to is not a setting. Fix: delete it or correct the key; settings "
            "here: type, conn_id, endpoint",
        ),
    ],
)
def test_settings_errors_point_at_the_line_with_a_fix(
    tmp_path: Path, old: str, new: str, below: int, words: str
) -> None:
    path, line = _edit(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line + below}: "), str(err.value)
    assert words in str(err.value)


def test_settings_file_with_a_duplicate_key_or_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path, line = _edit(tmp_path, "    max_workers: 4", "    max_workers: 4\n    max_workers: 8")
    with pytest.raises(ConfigError, match=rf"usdirect\.yaml:{line + 1}: duplicate key 'max_workers' "):
        load_config(path)
    path, line = _edit(tmp_path, "    max_workers: 4", "   max_workers: 4")
    with pytest.raises(ConfigError, match=rf"usdirect\.yaml:{line}: YAML syntax error"):
        load_config(path)


def test_duplicate_account_id_names_the_second_entry(tmp_path: Path) -> None:
    path, line = _edit(tmp_path, "operations:\n", "  - id: main\n\noperations:\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line}: account id 'main' is used twice")


@pytest.mark.parametrize(
    ("operation", "schedule", "words"),
    [
        ("get_invoices", "every tuesday", "'every tuesday' is not a cron expression"),
        ("get_inventory", "61 * * * *", "out of range"),
        ("get_inventory", "0 5 31 2 *", "it never fires"),
        ("send_orders", "0 0 * * * *", "(6 field(s), cron needs 5)"),
        ("send_orders", "@annually", "not an Airflow schedule preset"),
        ("get_shipments", "@once", "@once gives runs no data interval"),
        ("get_inventory_changes", "@continuous", "@continuous gives runs no data interval"),
    ],
)
def test_schedules_are_validated_when_the_settings_are_read(
    tmp_path: Path, operation: str, schedule: str, words: str
) -> None:
    path, line = _set_schedule(tmp_path, operation, repr(schedule))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: operations.{operation}.schedule: "), message
    assert words in message
    assert 'Fix: write five cron fields "minute hour day-of-month month day-of-week" in UTC' in message


@pytest.mark.parametrize(
    ("operation", "schedule"),
    [
        ("get_shipments", "@daily"),
        ("get_inventory_changes", "*/5 * * * 1-5"),
        ("send_orders", "@once"),
        ("send_orders", None),
        ("get_invoices", "@quarterly"),
    ],
)
def test_cron_presets_and_manual_only_schedules_are_accepted(
    tmp_path: Path, operation: str, schedule: str | None
) -> None:
    cfg = load_config(_write(tmp_path, lambda r: r["operations"][operation].update(schedule=schedule)))
    assert cfg.operations[operation].schedule == schedule
