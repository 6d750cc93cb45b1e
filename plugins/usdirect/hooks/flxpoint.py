"""Hook for the Flxpoint-like platform API (filled in by the hooks work)."""

from __future__ import annotations

from airflow.sdk import BaseHook


class FlxpointHook(BaseHook):
    conn_name_attr = "flxpoint_conn_id"
    default_conn_name = "flxpoint_default"
    conn_type = "flxpoint"
    hook_name = "Flxpoint-like platform"

    def __init__(self, flxpoint_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.flxpoint_conn_id = flxpoint_conn_id
