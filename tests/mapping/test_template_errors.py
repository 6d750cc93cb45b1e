"""Every template error names the file, the line and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mapping import line_of
from usdirect.mapping import TemplateError, load_template

BASE = """\
operation: inventory
value_maps:
  archived_by_status:
    values:
      active: false
      discontinued: true
    on_missing: default
    default: false
fields:
  sku:
    source: sku
    type: string
    transforms:
      - strip
      - prefix: "USD-"
  supplier_sku:
    source: sku
  quantity:
    source: quantity
    type: int
    transforms:
      - capped
  archived:
    source: status
    type: bool
    transforms:
      - map: archived_by_status
rules:
  - reject_if: {field: quantity, lt: 0}
    reason: negative quantity
"""


def _error(tmp_path: Path, text: str) -> tuple[str, TemplateError]:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    return str(path), caught.value


def test_base_template_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE)
    assert load_template(path).operation == "inventory"


@pytest.mark.parametrize(
    ("old", "new", "marker", "message", "fix"),
    [
        pytest.param(
            "      - capped\n",
            "      - caped\n",
            "- caped",
            "unknown transform 'caped'",
            "did you mean 'capped'?",
            id="unknown-transform",
        ),
        pytest.param(
            "    source: quantity\n",
            "    source: quantity\n    sorce: qty\n",
            "sorce:",
            "unknown key 'sorce' in fields.quantity",
            "allowed keys here: description, source,",
            id="unknown-key",
        ),
        pytest.param(
            "  supplier_sku:\n    source: sku\n",
            "",
            "fields:",
            "required target field 'supplier_sku' is not mapped",
            "add `supplier_sku:` under this `fields:` with a `source:`",
            id="required-target-unmapped",
        ),
        pytest.param(
            "    type: int\n",
            "    type: integer\n",
            "type: integer",
            "unknown type 'integer'",
            "use string, int, bool, date, timestamp or decimal(p,s)",
            id="bad-type-name",
        ),
        pytest.param(
            "    type: int\n",
            "    type: string  # wrong\n",
            "# wrong",
            "quantity is int in the pipeline, the template says string",
            "write `type: int`",
            id="type-mismatch",
        ),
        pytest.param(
            "      active: false\n",
            "      active: false\n      active: true\n",
            "active: true",
            "duplicate key 'active' (first written on line 5)",
            "keep one of the two entries",
            id="duplicate-value-map-key",
        ),
        pytest.param(
            "      - map: archived_by_status\n",
            "      - map: archived_by_stat\n",
            "- map: archived_by_stat",
            "unknown value map 'archived_by_stat'",
            "did you mean 'archived_by_status'?",
            id="unknown-value-map",
        ),
        pytest.param(
            "  quantity:\n",
            "  quantty:\n",
            "quantty:",
            "unknown target field 'quantty' for inventory",
            "did you mean 'quantity'?",
            id="unknown-target",
        ),
        pytest.param(
            "{field: quantity, lt: 0}",
            "{field: cost, lt: 0}",
            "field: cost",
            "rule tests 'cost', which this template does not map",
            "use one of: sku, supplier_sku, quantity, archived",
            id="rule-on-unmapped-field",
        ),
        pytest.param(
            "{field: quantity, lt: 0}",
            "{field: quantity, lt: zero}",
            "lt: zero",
            "'zero' is not a valid int for quantity",
            "write a value of type int",
            id="rule-bad-literal",
        ),
        pytest.param(
            "      discontinued: true\n",
            "      discontinued: maybe\n",
            "discontinued: maybe",
            "value map 'archived_by_status' maps 'discontinued' to 'maybe', not a valid bool for archived",
            "write a value of type bool",
            id="value-map-value-of-wrong-type",
        ),
        pytest.param(
            "      - capped\n",
            "      - capped\n      - round: 2\n      - case: upper\n",
            "- case: upper",
            "case works on text but comes after round/clamp",
            "move `case` above them",
            id="text-step-after-number-step",
        ),
        pytest.param(
            '      - prefix: "USD-"\n',
            "      - clamp: {min: 0}\n",
            "clamp:",
            "clamp needs an int or decimal field, sku is string",
            "remove `clamp`",
            id="number-step-on-text",
        ),
        pytest.param(
            "      - strip\n      - prefix",
            '      - replace: {pattern: "(a", with: ""}\n      - prefix',
            "replace:",
            "bad regular expression",
            "fix the pattern (RE2 syntax)",
            id="bad-regex",
        ),
        pytest.param(
            "    source: quantity\n",
            "    source: quantity\n    constant: 5\n",
            "  quantity:",
            "quantity needs exactly one of source, sources, format, constant (has 2)",
            "keep one",
            id="two-inputs",
        ),
        pytest.param(
            "operation: inventory\n",
            "operation: inventorys\n",
            "operation:",
            "operation: Input should be 'inventory', 'orders', 'shipments' or 'invoices'",
            "correct the value",
            id="bad-operation",
        ),
        pytest.param(
            "    on_missing: default\n",
            "    on_missing: default\n    ignore_case: true\n    values2: {}\n",
            "values2:",
            "unknown key 'values2' in value_maps.archived_by_status",
            "did you mean 'values'?",
            id="unknown-value-map-key",
        ),
        pytest.param(
            "fields:\n",
            "switches:\n  sync_inventory: false\n  sync_pricing: false\n  sync_quantity: false\nfields:\n",
            "switches:",
            "every switch is off",
            "turn one on",
            id="all-switches-off",
        ),
        pytest.param(
            "  sku:\n    source: sku\n",
            "  sku:\n    source: sku\n    required: false\n",
            "required: false",
            "sku is always required",
            "remove `required: false`",
            id="required-made-optional",
        ),
        pytest.param(
            "    type: int\n",
            "    type: int\n    default: lots\n",
            "default: lots",
            "default 'lots' is not a valid int",
            "write a value of type int",
            id="bad-default",
        ),
        pytest.param(
            "      - capped\n",
            "      - capped\n  title: [\n",
            "title: [",
            "YAML syntax error",
            "fix the indentation or quoting",
            id="yaml-syntax",
        ),
    ],
)
def test_error_names_file_line_and_fix(
    tmp_path: Path, old: str, new: str, marker: str, message: str, fix: str
) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path, error = _error(tmp_path, text)
    rendered = str(error)
    expected_line = line_of(text, marker)
    matching = [i for i in error.issues if message in i.message]
    assert matching, rendered
    issue = matching[0]
    assert issue.file == path
    if marker != "title: [":  # a syntax error is reported where the parser noticed it
        assert issue.line == expected_line, rendered
    assert fix in issue.fix, rendered
    assert f"{path}:{issue.line}: " in rendered and "Fix: " in rendered


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    text = BASE.replace("      - capped\n", "      - capt\n").replace("    type: string\n", "    type: str\n")
    _path, error = _error(tmp_path, text)
    assert len(error.issues) >= 1
    messages = " | ".join(i.message for i in error.issues)
    assert "unknown transform 'capt'" in messages


def test_semantic_problems_are_reported_together(tmp_path: Path) -> None:
    text = BASE.replace("    type: int\n", "    type: integer\n").replace(
        "map: archived_by_status", "map: nope"
    )
    _path, error = _error(tmp_path, text)
    messages = [i.message for i in error.issues]
    assert any("unknown type 'integer'" in m for m in messages)
    assert any("unknown value map 'nope'" in m for m in messages)


def test_missing_value_map_file_names_the_template_line(tmp_path: Path) -> None:
    text = BASE.replace("value_maps:\n", "value_map_files:\n  - shared.yaml\nvalue_maps:\n", 1)
    path, error = _error(tmp_path, text)
    issue = next(i for i in error.issues if i.file == path)
    assert issue.line == line_of(text, "- shared.yaml")
    assert "value map file 'shared.yaml' not found" in issue.message


def test_missing_file_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read the file"):
        load_template(tmp_path / "absent.yaml")


def test_duplicate_keys_in_ignore_case_value_map(tmp_path: Path) -> None:
    text = BASE.replace(
        "      discontinued: true\n", "      discontinued: true\n      Active: false\n"
    ).replace("    on_missing: default\n", "    on_missing: default\n    ignore_case: true\n")
    _path, error = _error(tmp_path, text)
    issue = error.issues[0]
    assert issue.line == line_of(text, "Active: false")
    assert "equal when case is ignored" in issue.message


def test_orders_template_needs_its_child_list(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "include/mappings/orders.yaml").read_text()
    text = text[: text.index("\nchildren:")]
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    (tmp_path / "value_maps.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "include/mappings/value_maps.yaml").read_text()
    )
    with pytest.raises(TemplateError, match="must map the child list 'lines'"):
        load_template(path)


def test_operation_specific_sections(mappings_copy: Path) -> None:
    path = mappings_copy / "shipments.yaml"
    text = path.read_text().replace(
        "\nchildren:\n  items:\n", "\nswitches:\n  sync_pricing: true\nchildren:\n  parcels:\n"
    )
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    issues = {i.message: i for i in caught.value.issues}
    switches = issues["switches apply to inventory templates, not shipments"]
    assert switches.line == line_of(text, "switches:") and switches.fix == "remove `switches:`"
    parcels = issues["shipments has no child list 'parcels'"]
    assert parcels.line == line_of(text, "parcels:") and parcels.fix == "name it `items`"
