"""Airflow DAGs for US Direct Get Inventory, full feed (one per account); built by usdirect.dag_factory."""

from usdirect.dag_factory import build_dags
from usdirect.operators.inventory import define_get_inventory

globals().update(build_dags("get_inventory", define_get_inventory))
