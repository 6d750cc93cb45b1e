"""Print the uv options that point uv at the package index pip is configured with.

`make install` installs with uv, which reads neither pip.conf nor PIP_* variables: without this, a
machine whose pip goes to a mirror or an extra index would send uv to PyPI alone. Reads
`python -m pip config list` (files and environment, as pip itself merges them) and prints one
option per line for the Makefile to pass to `uv pip install`; prints nothing when pip is not
configured, so uv keeps its own defaults (PyPI, or the user's uv.toml).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable

# pip option -> uv option; pip splits each value on whitespace into several locations.
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
}
# Where pip takes an option from, highest precedence first (environment, then [install], then [global]).
SECTIONS = (":env:", "install", "global")


def uv_options(config_lines: Iterable[str]) -> list[str]:
    """uv options for the lines `pip config list` printed (``section.name='value'``)."""
    values: dict[tuple[str, str], str] = {}
    for line in config_lines:
        key, sep, raw = line.strip().partition("=")
        if not sep:
            continue
        section, _, name = key.rpartition(".")
        values[(section, name)] = str(ast.literal_eval(raw))
    options: list[str] = []
    for name, flag in OPTIONS.items():
        value = next((values[(s, name)] for s in SECTIONS if (s, name) in values), "")
        for location in value.split():
            options += [flag, location]
    if options:
        # pip picks the best version across all its indexes; uv by default stops at the first
        # index that has the package, which would miss pins an extra index holds only older versions of.
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def main() -> int:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    print("\n".join(uv_options(listed.stdout.splitlines() if listed.returncode == 0 else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
