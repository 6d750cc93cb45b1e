"""The hostname a Celery worker of the e2e test reports for the task instances it runs.

Both workers share one machine, so the default (its FQDN) cannot tell them apart. Each worker
process gets ``[core] hostname_callable`` pointing here and a USDIRECT_E2E_WORKER of its own,
which its task processes inherit.
"""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["USDIRECT_E2E_WORKER"]
