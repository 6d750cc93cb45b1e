"""Airflow DAGs for US Direct Get Shipments (one per account); built by usdirect.dag_factory."""

from usdirect.dag_factory import build_dags
from usdirect.operators.shipments import define_get_shipments

globals().update(build_dags("get_shipments", define_get_shipments))
