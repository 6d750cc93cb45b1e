"""Airflow DAGs for US Direct Send Orders (one per account); built by usdirect.dag_factory."""

from usdirect.dag_factory import build_dags
from usdirect.operators.orders import define_send_orders

globals().update(build_dags("send_orders", define_send_orders))
