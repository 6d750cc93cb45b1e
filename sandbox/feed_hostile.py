"""Hostile feed bodies, as broken exports and portals really send them (feed modes of the sandbox).

Each mode rewrites the normal feed file in place and says what the server sends it as:

- ``control_chars``: every 50th row has NUL and other control characters in its title and brand
  (and the first such row in its SKU), as a C program's export leaves them.
- ``cp1252``: the whole file in Windows-1252 (Excel's "CSV" on Windows), so é and ñ are single bytes.
- ``duplicate_column``: a second ``quantity`` column at the end (a renamed column that now clashes).
- ``html``: the reseller portal's login page, served with 200 as text/html.
- ``binary``: random bytes (a broken or wrong export), served as application/octet-stream.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

HOSTILE_MODES = ("control_chars", "cp1252", "duplicate_column", "html", "binary")
CONTROL_EVERY = 50
LOGIN_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>US Direct Reseller Portal - Sign in</title></head>
<body><form method="post" action="/login"><h1>Your session has expired</h1>
<label>E-mail <input name="email"></label><label>Password <input type="password" name="password"></label>
<button>Sign in</button></form></body></html>
"""


def make_hostile(path: Path, mode: str, seed: int) -> tuple[str, list[dict]]:
    """Rewrite the feed at ``path`` for ``mode``; returns (media type, the rows it changed)."""
    if mode == "html":
        path.write_bytes(LOGIN_PAGE)
        return "text/html; charset=utf-8", []
    if mode == "binary":
        path.write_bytes(np.random.default_rng([seed, 7]).bytes(64 * 1024))
        return "application/octet-stream", []
    text = path.read_text(encoding="utf-8")
    if mode == "cp1252":
        path.write_bytes(text.encode("cp1252"))
        return "text/csv; charset=windows-1252", []
    rows = list(csv.reader(io.StringIO(text, newline="")))
    changed: list[dict] = []
    if mode == "duplicate_column":
        rows = [[*row, "quantity" if n == 0 else "0"] for n, row in enumerate(rows)]
    elif mode == "control_chars":
        for n in range(1, len(rows), CONTROL_EVERY):
            row = rows[n]
            row[1] = "\x00" + row[1][:4] + "\x01\x08" + row[1][4:] + "\x1f"
            row[2] = row[2] + "\x00"
            if n == 1:
                row[0] = row[0] + "\x00"
            changed.append({"line": n + 1, "sku": row[0].replace("\x00", "")})
    else:
        raise ValueError(f"unknown hostile feed mode {mode!r}")
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8"))
    return "text/csv; charset=utf-8", changed
