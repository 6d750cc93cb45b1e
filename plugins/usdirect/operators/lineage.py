"""OpenLineage for the operators: the endpoints and tables a step read, the tables and platform
records it wrote, with their schemas and the run's row counts.

With ``apache-airflow-providers-openlineage`` installed (the ``lineage`` extra), the provider asks
each operator for ``get_openlineage_facets_on_complete`` after it ran; ``UsDirectBaseOperator``
hands that to :func:`operator_lineage`. The provider and the OpenLineage client are imported only
inside these functions, so nothing changes for a deployment without them.

What a step reads and writes is its class's ``products``. Datasets name no secret: an endpoint is
the ``scheme://host:port`` of its base URL and its path (the Feed URL without its query string,
where its key is, user info and fragment); a table is its database, schema and name.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from usdirect.domain import products as pr

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors.base import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.operators.base import OperationRun

_DEFAULT_PORTS = {"http": 80, "https": 443}
MEMORY = ":memory:"


def endpoint_id(url: str, path: str = "") -> tuple[str, str]:
    """(namespace, name) of an HTTP endpoint: ``scheme://host:port`` of ``url``, and its path with
    ``path`` appended. Nothing else of the URL is kept: a Feed URL carries its key in the query."""
    parts = urlsplit(url.strip())
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    namespace = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return namespace, (parts.path.rstrip("/") + path) or "/"


def table_id(conn: Any, schema: str | None, table: str) -> tuple[str, str]:
    """(namespace, name) of a warehouse table by the OpenLineage naming convention: Postgres
    ``postgres://host:port`` and ``database.schema.table``; DuckDB ``duckdb://<file>`` and
    ``catalog.schema.table`` (the catalog is the file's stem, as DuckDB names it)."""
    if conn.conn_type == "duckdb":
        # The provider's "database" extra wins over the host; a MotherDuck token after '?' is dropped.
        path = str((conn.extra_dejson or {}).get("database") or conn.host or MEMORY).split("?")[0]
        catalog = "memory" if path == MEMORY else PurePosixPath(path).stem
        return f"duckdb://{path}", f"{catalog}.{schema or 'main'}.{table}"
    return f"postgres://{conn.host}:{conn.port or 5432}", f"{conn.schema}.{schema or 'public'}.{table}"


def operator_lineage(products: pr.Products, run: OperationRun, changed: int) -> OperatorLineage[Any, Any]:
    """The inputs and outputs of a step that ran in ``run``. Tables count when the warehouse is a
    target of the account, platform records when the platform is.

    The row counts are the run's audit figures: ``rows_in`` of the first input (and the bytes of
    a downloaded feed), ``rows_rejected`` of ``usdirect_rejects``; ``changed`` (the rows the step
    changed, as its Asset events count them) of the first other table and platform record kind.
    """
    from airflow.providers.openlineage.extractors.base import OperatorLineage

    datasets = _Datasets(run)
    inputs = [d for d in map(datasets.read, products.reads) if d is not None]
    rec = run.record
    if inputs and (rec.rows_in is not None or "bytes" in rec.counts):
        inputs[0] = datasets.with_read_stats(inputs[0], rec.rows_in, rec.counts.get("bytes"))
    outputs: list[OutputDataset] = []
    if "warehouse" in run.targets:
        primary = next((t for t in products.tables if t != pr.REJECTS), None)
        for table in products.tables:
            rows = rec.rows_rejected if table == pr.REJECTS else changed if table == primary else None
            outputs.append(datasets.table_output(table, rows))
    if "platform" in run.targets:
        for i, kind in enumerate(products.platform):
            outputs.append(datasets.platform_output(kind, changed if i == 0 else None))
    return OperatorLineage(inputs=inputs, outputs=outputs)


class _Datasets:
    """Builds the datasets of one run, reading each of its connections once."""

    def __init__(self, run: OperationRun) -> None:
        self.run = run

    def read(self, source: str) -> InputDataset | None:
        """The dataset of a ``products.reads`` entry: ``usdirect:feed``, ``usdirect:<METHOD /path>``,
        ``platform:<METHOD /path>`` or ``warehouse:<table>`` (None when that target is not used)."""
        from openlineage.client.event_v2 import InputDataset

        system, _, what = source.partition(":")
        if system == "usdirect":
            if source == pr.USDIRECT_FEED:
                feed_url = self._usdirect.conn_field("feed_url")
                return InputDataset(*endpoint_id(str(feed_url))) if feed_url else None
            return InputDataset(*endpoint_id(self._usdirect.base_url, _path(what)))
        if system not in ("platform", "warehouse"):
            raise ValueError(
                f"{source!r}: a source starts with usdirect:, platform: or warehouse: "
                "(see usdirect.domain.products)"
            )
        if system not in self.run.targets:
            return None
        if system == "platform":
            return InputDataset(*endpoint_id(self._platform_url, _path(what)))
        return InputDataset(*self._table(what), facets=_schema(what))

    def table_output(self, table: str, rows: int | None) -> OutputDataset:
        from openlineage.client.event_v2 import OutputDataset

        return OutputDataset(*self._table(table), facets=_schema(table), outputFacets=_rows_written(rows))

    def platform_output(self, kind: str, rows: int | None) -> OutputDataset:
        """A platform record kind, named by its kind under the platform's base URL."""
        from openlineage.client.event_v2 import OutputDataset

        namespace, _ = endpoint_id(self._platform_url)
        return OutputDataset(namespace, kind, outputFacets=_rows_written(rows))

    @staticmethod
    def with_read_stats(dataset: InputDataset, rows: int | None, size: int | None) -> InputDataset:
        from openlineage.client.event_v2 import InputDataset
        from openlineage.client.facet_v2 import input_statistics_input_dataset as stats

        facet = stats.InputStatisticsInputDatasetFacet(rowCount=rows, size=size)
        return InputDataset(
            dataset.namespace, dataset.name, facets=dataset.facets, inputFacets={"inputStatistics": facet}
        )

    @cached_property
    def _usdirect(self) -> UsDirectHook:
        from usdirect.hooks.usdirect import UsDirectHook

        return UsDirectHook(self.run.account.usdirect_conn_id)

    @cached_property
    def _platform_url(self) -> str:
        from usdirect.hooks.flxpoint import FlxpointHook

        return FlxpointHook(self.run.account.flxpoint_conn_id).base_url

    @cached_property
    def _warehouse_conn(self) -> Any:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(self.run.account.warehouse_conn_id)

    def _table(self, table: str) -> tuple[str, str]:
        return table_id(self._warehouse_conn, self.run.cfg.warehouse_schema(self.run.account), table)


def _path(endpoint: str) -> str:
    """``/v1/shipments`` of ``GET /v1/shipments`` (the method is not part of a dataset's name)."""
    return endpoint.split()[-1]


def _schema(table: str) -> dict[str, Any]:
    """The schema facet of a product table, from its ``Record``."""
    from openlineage.client.facet_v2 import schema_dataset

    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=f.name, type=f.type.sql, description=f.description or None
        )
        for f in pr.table_record(table).fields
    ]
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}


def _rows_written(rows: int | None) -> dict[str, Any]:
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    return (
        {} if rows is None else {"outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=rows)}
    )
