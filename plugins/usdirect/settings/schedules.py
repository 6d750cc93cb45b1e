"""The ``schedule:`` of an operation: a 5-field cron expression (UTC) or one of Airflow's presets.

Checked when the settings file is read, so ``schedule: "every tuesday"`` is refused naming the
setting, its line and a working example, instead of surfacing as a croniter message on import.
"""

from __future__ import annotations

import datetime as dt

from croniter import CroniterError, croniter

# Airflow's cron presets (airflow.sdk.definitions.timetables._cron.CRON_PRESETS).
PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
# Presets without a cron equivalent: no data interval, so only for operations that do not own one.
UNTIMED = ("@once", "@continuous")
_EXAMPLE = (
    'write five cron fields "minute hour day-of-month month day-of-week" in UTC (e.g. "0 6 * * 2" '
    'for Tuesdays at 06:00, "*/15 * * * *" for every 15 minutes), one of {presets}, or null to run '
    "only when triggered"
)


def schedule_problem(expression: str, *, windowed: bool) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``expression`` cannot schedule the operation, else None.

    ``windowed`` operations own a data interval per run, which @once and @continuous do not have.
    """
    presets = ", ".join(PRESETS if windowed else PRESETS + UNTIMED)
    fix = _EXAMPLE.format(presets=presets)
    text = expression.strip()
    if text in UNTIMED:
        if windowed:
            return f"{text} gives runs no data interval, which this operation fetches by", fix
        return None
    if text.startswith("@"):
        if text in PRESETS:
            return None
        return f"{expression!r} is not an Airflow schedule preset", fix
    fields = text.split()
    if len(fields) != 5:
        return f"{expression!r} is not a cron expression ({len(fields)} field(s), cron needs 5)", fix
    try:
        croniter(text, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterError as exc:
        reason = "it never fires" if "find next date" in str(exc) else str(exc)
        return f"{expression!r} is not a usable cron expression: {reason}", fix
    return None
