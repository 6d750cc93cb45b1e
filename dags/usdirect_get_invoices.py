"""Airflow DAGs for US Direct Get Invoice (one per account); built by usdirect.dag_factory."""

from usdirect.dag_factory import build_dags
from usdirect.operators.invoices import define_get_invoices

globals().update(build_dags("get_invoices", define_get_invoices))
