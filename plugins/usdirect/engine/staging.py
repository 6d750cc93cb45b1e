"""Moving inventory files between tasks through the run's staging location (``ObjectStoragePath``).

Tasks of one run may run on different workers, so a file is handed over through staging, never a
worker's disk. A local staging folder (``file://``) is used in place, without copies; an object
store (``s3://``, ``gs://``...) is streamed to and from a task-private temp folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_COPY_CHUNK = 8 << 20


def _local(path: Any) -> Path | None:
    """The local filesystem path behind a ``file://`` ObjectStoragePath, else None."""
    if getattr(path, "protocol", "file") in ("file", "local"):
        return Path(path.path)
    return None


@contextmanager
def writing(dest: Any) -> Iterator[Path]:
    """Yield a local path to write; it lands at ``dest`` when the block succeeds.

    A block that wrote nothing (a 304 from the feed download) uploads nothing, as nothing appears
    in a local staging folder either."""
    local = _local(dest)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="usdirect-") as tmp:
        path = Path(tmp) / dest.name
        yield path
        if not path.exists():
            return
        with path.open("rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, _COPY_CHUNK)


@contextmanager
def reading(src: Any) -> Iterator[Path]:
    """Yield a local path holding the staged file ``src`` (the file itself when staging is local)."""
    local = _local(src)
    if local is not None:
        if not local.exists():
            raise FileNotFoundError(f"staged file {local} is missing: re-run the whole DAG run")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="usdirect-") as tmp:
        path = Path(tmp) / src.name
        with src.open("rb") as data, path.open("wb") as out:
            shutil.copyfileobj(data, out, _COPY_CHUNK)
        yield path


@contextmanager
def scratch() -> Iterator[Path]:
    """A task-private temp folder for intermediate files that no other task needs."""
    with tempfile.TemporaryDirectory(prefix="usdirect-") as tmp:
        yield Path(tmp)
