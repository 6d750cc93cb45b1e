"""The shipped settings file rewritten for one DAG test: one account with its targets, templates
from the repository (or the test's own), staging in the test's folder, alerts and retries as asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO


def write_settings(
    tmp: Path,
    targets: list[str],
    *,
    alerts_conn: str | None = None,
    needs_attention: bool = True,
    retries: int | None = None,
    schema: str | None = None,
    templates: dict[str, Path] | None = None,
) -> Path:
    """``usdirect.yaml`` in ``tmp``; alerts go to the ``http`` connection ``alerts_conn`` if given."""
    raw: dict[str, Any] = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for name, op in raw["operations"].items():
        op["template"] = str((templates or {}).get(name) or REPO / "include" / op["template"])
    raw["accounts"] = [{**raw["accounts"][0], "targets": targets}]
    raw["alerts"] = {"on_failure": False, "needs_attention": False, "channels": []}
    if alerts_conn:
        channel = {"type": "http", "conn_id": alerts_conn, "endpoint": "/alerts"}
        raw["alerts"] = {"on_failure": True, "needs_attention": needs_attention, "channels": [channel]}
    raw["staging"] = {"url": str(tmp / "staging")}
    if schema is not None:
        raw["warehouse"] = {"schema": schema}
    if retries is not None:
        raw["tasks"] = {"retries": retries, "retry_delay_seconds": 0}
    path = tmp / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
