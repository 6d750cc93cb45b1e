"""Hook for the US Direct reseller API (filled in by the hooks work)."""

from __future__ import annotations

from airflow.sdk import BaseHook


class UsDirectHook(BaseHook):
    conn_name_attr = "usdirect_conn_id"
    default_conn_name = "usdirect_default"
    conn_type = "usdirect"
    hook_name = "US Direct"

    def __init__(self, usdirect_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.usdirect_conn_id = usdirect_conn_id
