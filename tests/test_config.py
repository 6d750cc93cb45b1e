"""The settings file: bundled defaults, overrides and the errors a user meets after a typo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from usdirect.config import ConfigError, load_config

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
            {"id": "west", "usdirect_conn_id": "usdirect_west", "templates": {"get_inventory": "west.yaml"}}
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
