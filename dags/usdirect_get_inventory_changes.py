"""Airflow DAGs for US Direct price and quantity changes (one per account); built by usdirect.dag_factory."""

from usdirect.dag_factory import build_dags
from usdirect.operators.inventory import define_get_inventory_changes

globals().update(build_dags("get_inventory_changes", define_get_inventory_changes))
