"""The metadata DB of `make airflow`: Postgres when it answers on 127.0.0.1:5432, else SQLite.

SQLite allows one writer at a time: with the scheduler, workers and API server writing at once, a
backfill started from the UI answered 503 ("database is locked") and stopped the scheduler. So
`make airflow` uses a Postgres database of its own (``usdirect_airflow_<hash of the folder>``,
created on first use; ``USDIRECT_AIRFLOW_DB`` names another) and falls back to SQLite in
AIRFLOW_HOME only when no Postgres answers, saying so. A fresh start (no sandbox state, no
warehouse) starts it over too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

# Where to find Postgres (a maintenance DSN; the metadata gets its own database next to it).
PG_ADMIN_DSN = os.environ.get("USDIRECT_AIRFLOW_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SQLITE_FILE = "airflow.db"
EXPLICIT = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


def database_for(home: Path) -> str:
    """``usdirect_airflow_<8 hex of the home's path>``: two checkouts never share (or drop) one."""
    digest = hashlib.sha1(str(home.resolve()).encode(), usedforsecurity=False).hexdigest()[:8]
    return os.environ.get("USDIRECT_AIRFLOW_DB") or f"usdirect_airflow_{digest}"


@dataclass(frozen=True)
class MetadataDb:
    """The SQLAlchemy URL for Airflow, what the banner says about it, and a warning if degraded."""

    url: str
    label: str
    warning: str | None = None


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _postgres_error(admin_dsn: str, database: str) -> str | None:
    """None when Postgres answers (the database exists afterwards), else why it did not."""
    import psycopg

    try:
        with psycopg.connect(admin_dsn, connect_timeout=3, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def choose(home: Path, admin_dsn: str = PG_ADMIN_DSN, database: str | None = None) -> MetadataDb:
    """Postgres (``usdirect_airflow``) if it answers, SQLite in ``home`` with a warning otherwise.

    An ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` already set in the environment is used as it is.
    """
    explicit = os.environ.get(EXPLICIT)
    if explicit:
        return MetadataDb(explicit, f"{_shown(explicit)} (from {EXPLICIT})")
    database = database or database_for(home)
    error = _postgres_error(admin_dsn, database)
    if error is None:
        url = make_url(admin_dsn).set(drivername="postgresql+psycopg", database=database)
        return MetadataDb(url.render_as_string(hide_password=False), f"Postgres, {_shown(str(url))}")
    sqlite = home / SQLITE_FILE
    return MetadataDb(
        f"sqlite:///{sqlite}",
        f"SQLite, {sqlite}",
        warning=(
            f"PostgreSQL at {_shown(admin_dsn)} did not answer ({error}), so the Airflow metadata DB "
            f"is SQLite ({sqlite}). SQLite allows one writer at a time: backfills and busy runs can "
            "fail with 'database is locked' and stop the scheduler. Start PostgreSQL (trust auth for "
            "user postgres on 127.0.0.1:5432, or set USDIRECT_AIRFLOW_PG to a DSN of yours) and "
            "restart `make airflow`."
        ),
    )


def drop(home: Path, admin_dsn: str = PG_ADMIN_DSN, database: str | None = None) -> list[str]:
    """Delete the metadata DBs `make airflow` creates (both kinds); one line per thing done."""
    import psycopg

    database = database or database_for(home)
    done = []
    sqlite = home / SQLITE_FILE
    if sqlite.exists():
        sqlite.unlink()
        done.append(f"removed {sqlite}")
    try:
        with psycopg.connect(admin_dsn, connect_timeout=3, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
                done.append(f"dropped the Postgres database {database}")
    except psycopg.Error as exc:
        done.append(
            f"PostgreSQL at {_shown(admin_dsn)} did not answer ({str(exc).strip()[:200]}): its database "
            f"{database}, if any, was kept; run `make airflow-reset` again once it is up"
        )
    return done
