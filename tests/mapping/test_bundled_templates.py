"""Every bundled template validates, and the `check` command reports good and broken files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mapping import line_of
from tests.support.paths import MAPPINGS
from usdirect.mapping import load_template
from usdirect.mapping.schema import CANONICAL

TEMPLATES = ["inventory", "orders", "shipments", "invoices"]


@pytest.mark.parametrize("operation", TEMPLATES)
def test_bundled_template_is_valid_and_maps_every_required_target(operation: str) -> None:
    template = load_template(MAPPINGS / f"{operation}.yaml")
    assert template.operation == operation
    targets = CANONICAL[operation]
    assert template.schema.names == [t.name for t in targets.targets]
    assert template.mapped_schema.names[-1] == "row_number"
    mapped = set(template.mapped_fields)
    assert {t.name for t in targets.targets if t.required} <= mapped
    if targets.child is not None:
        assert template.child_name == targets.child.name
        assert template.child_schema.names == [
            targets.child.parent_key,
            *(t.name for t in targets.child.targets),
            "row_number",
        ]


def test_inventory_switches_choose_the_writable_fields() -> None:
    template = load_template(MAPPINGS / "inventory.yaml")
    assert (
        template.switches.sync_inventory
        and template.switches.sync_pricing
        and template.switches.sync_quantity
    )
    assert set(template.writable_fields()) == set(template.schema.names)
    pricing_only = template.with_switches(sync_inventory=False, sync_quantity=False)
    assert pricing_only.writable_fields() == ("sku", "supplier_sku", "cost", "msrp", "map")
    quantity_only = template.with_switches(sync_inventory=False, sync_pricing=False)
    assert quantity_only.writable_fields() == ("sku", "supplier_sku", "quantity")
    no_quantity = template.with_switches(sync_quantity=False)
    assert "quantity" not in no_quantity.writable_fields()
    assert {"archived", "status", "title", "cost"} <= set(no_quantity.writable_fields())
    orders = load_template(MAPPINGS / "orders.yaml")
    assert orders.switches is None
    with pytest.raises(ValueError, match="no switches"):
        orders.with_switches(sync_pricing=False)


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usdirect.mapping", "check", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_command_accepts_every_bundled_file() -> None:
    files = sorted(MAPPINGS.glob("*.yaml"))
    assert {f.stem for f in files} >= {*TEMPLATES, "value_maps"}
    result = _check(*files)
    assert result.returncode == 0, result.stderr
    for file in files:
        assert f"{file}: OK" in result.stdout
    assert "value maps: shipping_codes" in result.stdout


def test_check_command_names_file_line_and_fix_of_a_broken_template(mappings_copy: Path) -> None:
    path = mappings_copy / "inventory.yaml"
    text = path.read_text().replace("      - capped\n", "      - caped\n")
    path.write_text(text)
    result = _check(path)
    assert result.returncode == 1
    line = line_of(text, "- caped")
    assert f"{path}:{line}: unknown transform 'caped'" in result.stderr
    assert "Fix: use one of:" in result.stderr and "did you mean 'capped'?" in result.stderr
    assert "OK" not in result.stdout


def test_check_command_rejects_a_duplicate_value_map_key(mappings_copy: Path) -> None:
    path = mappings_copy / "value_maps.yaml"
    text = path.read_text().replace("      UPS2: UPS-2DA ", "      UPSG: UPS-2DA ")
    path.write_text(text)
    result = _check(path)
    assert result.returncode == 1
    first, second = line_of(text, "UPSG:"), line_of(text, "UPSG:", 2)
    assert f"{path}:{second}: duplicate key 'UPSG' (first written on line {first})" in result.stderr
    assert "Fix: keep one of the two entries" in result.stderr
    # A template using that file reports the same problem.
    assert _check(mappings_copy / "orders.yaml").returncode == 1


def test_check_command_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "usdirect.mapping"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
