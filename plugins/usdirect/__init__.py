"""US Direct dropship integration for Apache Airflow 3: hooks, mapping templates and pipelines."""

from usdirect.get_provider_info import __version__

__all__ = ["__version__"]
