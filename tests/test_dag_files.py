"""Every DAG file imports cleanly and keeps heavy libraries out of parse time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "pyarrow", "httpx", "duckdb", "psycopg")


def test_dagbag_imports_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= expected_dag_ids()


def test_params_live_on_the_dag_and_reach_every_task_when_it_runs() -> None:
    """The tasks keep no copy of the DAG's Params (parsing cost), yet each task sees them all, with
    a run's conf on top, the way the task runner merges them."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import process_params

    from usdirect.domain.operations import SPECS

    bag = DagBag(dag_folder=str(DAGS / "usdirect_get_inventory.py"))
    dag = bag.dags["usdirect_get_inventory"]
    names = [p.name for p in SPECS["get_inventory"].params]
    assert list(dag.params) == names and "accept_held" in names
    for task in dag.tasks:
        assert not task.params
        seen = process_params(dag, task, {"accept_held": ["USD-1"]}, suppress_exception=False)
        assert seen["accept_held"] == ["USD-1"] and seen["allow_shrink"] is False


def expected_dag_ids() -> set[str]:
    """DAG ids promised by the README for the operations that exist so far."""
    return {p.stem for p in DAG_FILES}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_does_not_import_heavy_modules_at_parse_time(dag_file: Path) -> None:
    # airflow.sdk itself imports httpx in 3.3, so only what the DAG file adds on top counts.
    code = (
        "import runpy, sys\n"
        "import airflow.sdk\n"
        "baseline = set(sys.modules)\n"
        f"runpy.run_path({str(dag_file)!r})\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules and m not in baseline]\n"
        "print('LOADED=' + ','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    marker = [line for line in out.stdout.splitlines() if line.startswith("LOADED=")][-1]
    assert marker == "LOADED=", f"{dag_file.name} imports at parse time: {marker}"


def _settings(tmp_path: Path, **templates: Path) -> Path:
    """The bundled settings with absolute template paths, some replaced by ``templates``."""
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for name, op in raw["operations"].items():
        op["template"] = str(templates.get(name) or REPO / "include" / op["template"])
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _template_copy(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of a bundled template (next to its value-map file) with one edit, and the edited line."""
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    (folder / "value_maps.yaml").write_text((REPO / "include" / "mappings" / "value_maps.yaml").read_text())
    text = (REPO / "include" / "mappings" / name).read_text()
    assert text.count(old) == 1, old
    path = folder / name
    path.write_text(text.replace(old, new))
    return path, text[: text.index(old)].count("\n") + 1


def _import_errors(monkeypatch: pytest.MonkeyPatch, settings: Path) -> dict[str, str]:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("USDIRECT_CONFIG", str(settings))
    bag = DagBag(dag_folder=str(DAGS))
    return {Path(file).name: error for file, error in bag.import_errors.items()}


def test_broken_template_is_an_import_error_of_its_dag_file_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template, line = _template_copy(
        tmp_path, "orders.yaml", "    source: fulfillmentRequestNumber", "    sorce: x"
    )
    errors = _import_errors(monkeypatch, _settings(tmp_path, send_orders=template))
    assert set(errors) == {"usdirect_send_orders.py"}, errors  # the other DAG files still import
    message = errors["usdirect_send_orders.py"]
    assert f"{template}:{line}: unknown key 'sorce' in fields.po_number" in message
    assert "(did you mean 'source'?)" in message


def test_template_for_another_operation_is_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = REPO / "include" / "mappings" / "inventory.yaml"
    errors = _import_errors(monkeypatch, _settings(tmp_path, get_invoices=inventory))
    assert set(errors) == {"usdirect_get_invoices.py"}, errors
    assert (
        "this is an 'inventory' template, but it is set for 'invoices'" in errors["usdirect_get_invoices.py"]
    )


def test_missing_template_file_is_an_import_error_naming_the_settings_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, get_shipments=tmp_path / "nope.yaml")
    line = settings.read_text().splitlines().index(f"    template: {tmp_path / 'nope.yaml'}") + 1
    errors = _import_errors(monkeypatch, settings)
    assert set(errors) == {"usdirect_get_shipments.py"}, errors
    assert (
        f"{settings}:{line}: operations.get_shipments.template: template "
        in errors["usdirect_get_shipments.py"]
    )


def test_settings_error_is_an_import_error_with_line_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    settings.write_text(settings.read_text().replace("schedule: 0 6 * * *", "schedule: every tuesday"))
    line = settings.read_text().splitlines().index("    schedule: every tuesday") + 1
    errors = _import_errors(monkeypatch, settings)
    assert set(errors) == {p.name for p in DAG_FILES}
    message = errors["usdirect_get_invoices.py"]
    assert (
        f"{settings}:{line}: operations.get_invoices.schedule: 'every tuesday' is not a cron expression"
        in (message)
    )
    assert "croniter" not in message.lower()
