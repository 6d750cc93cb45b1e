"""Bytecode for the installed packages before `make airflow` starts Airflow's processes.

uv (like `pip install --no-compile`) installs no bytecode. Each Airflow process, from the CLI
calls before the banner to the four components, then compiles the thousands of modules it imports
from source, about three times slower than loading bytecode (an `airflow db migrate` took 13 s
instead of 4 s here), and with PYTHONDONTWRITEBYTECODE set (as on the test machines) it does so
at every start, never caching. On a fresh clone on a busy machine the first `make airflow` took
minutes to print its banner. Compiling the folder once, up front, costs about a minute of CPU.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
from pathlib import Path


def uncompiled_site(package: str = "airflow") -> Path | None:
    """The folder ``package`` is installed in, if the package has no bytecode and the folder can
    be written (a read-only installation is someone else's to compile); None otherwise."""
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    init = Path(spec.origin)
    if Path(importlib.util.cache_from_source(str(init))).exists():
        return None
    site = init.parent.parent
    return site if os.access(site, os.W_OK) else None


def compile_site(site: Path) -> None:
    """Compile every module under ``site`` (all cores; files that do not compile are left as
    they are: Python reads them from source, as it did before)."""
    compileall.compile_dir(site, quiet=2, workers=0)
