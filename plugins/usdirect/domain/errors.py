"""The one question every failure answers: can waiting fix it?

A wrong or unauthorised credential, a broken template or settings file, a tripped guard: Airflow's
retries would only delay the alert by their back-off. Errors deriving from ``PermanentError`` end
the task at once, without retries (``usdirect.operators.base.operation_run`` turns them into
``AirflowFailException``), and stay attached as the failure's ``__cause__`` so the alert names the
real cause. Everything else (timeouts, 5xx, 429, locks) keeps its retries.
"""

from __future__ import annotations


class PermanentError(Exception):
    """No retry can succeed until a person acts; the message names the cause and the fix."""
