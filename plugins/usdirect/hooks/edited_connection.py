"""The connection a person is testing in the UI, which Airflow tests under a random id.

Airflow 3's ``POST /api/v2/connections/test`` (the Test button) copies the connection, merged
with the form's fields, to a transient random ``conn_id`` exported as ``AIRFLOW_CONN_<ID>`` and
calls ``test_connection()`` on that copy. A message naming the copy ("re-enter the Reseller Token
on the usdirect connection 'x7Gq2LpA'") points at a connection that does not exist. The
``usdirect_ui_compat`` middleware records the request's ``connection_id`` here for the duration of
the request, and the hooks name that one instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_EDITED: ContextVar[str | None] = ContextVar("usdirect_edited_connection", default=None)


@contextmanager
def editing(connection_id: str | None) -> Iterator[None]:
    """Within this block (one Test Connection request), transient copies are named ``connection_id``."""
    token = _EDITED.set(connection_id or None)
    try:
        yield
    finally:
        _EDITED.reset(token)


def shown_conn_id(conn_id: str) -> str:
    """The id to put in messages: the edited connection's when ``conn_id`` is Airflow's transient copy.

    Only a connection defined solely by an environment variable during a Test Connection request
    is taken for the copy; every other id is shown as it is.
    """
    edited = _EDITED.get()
    if edited and edited != conn_id and f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
        return edited
    return conn_id
