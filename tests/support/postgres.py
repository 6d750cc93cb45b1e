"""Throw-away Postgres databases on the test server, so tests never share or keep state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_ADMIN_DSN = os.environ.get("USDIRECT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """DSN of a Postgres database created for the caller and dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
