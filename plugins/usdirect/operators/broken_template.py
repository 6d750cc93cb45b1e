"""The stand-in DAG body of an account whose mapping template is broken.

Airflow 3.3 records import errors per DAG file, and any import error marks every DAG of that file
stale, so raising at parse time would take all accounts of the operation down for one account's
template. Instead the factory gives that one account this single task: each run fails at once
(no retries) with the template's file, line and fix, and the failure alert goes out; the other
accounts keep their DAGs. The task checks the template again when it runs, so a template fixed
since the last parse is not reported as broken.
"""

from __future__ import annotations

from airflow.sdk import task

TASK_ID = "check_template"


@task(task_id=TASK_ID, retries=0)
def check_template(operation: str, account_id: str) -> None:
    """Fail with what is wrong with the account's template; skip if it was fixed since the parse."""
    from airflow.sdk.exceptions import AirflowSkipException

    from usdirect.operators.base import operation_run
    from usdirect.settings.template_check import account_template_problem

    with operation_run(operation, account_id) as run:
        problem = account_template_problem(run.cfg, run.account, operation)
        if problem is not None:
            raise problem  # a PermanentError: the task fails now, and the alert names the template
        raise AirflowSkipException(
            f"the {operation} template of account {account_id!r} is valid again: its DAG gets its "
            "tasks back when the DAG file is parsed next (within min_file_process_interval); "
            "trigger the run again then"
        )
