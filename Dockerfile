# Airflow 3.3.2 image with the usdirect package, its DAGs, templates and config baked in.
# Uses the same lock file as `make` and CI, so the image gets exactly the tested versions: the
# run-time set only, as `make demo` installs it (with pip here, the image's own installer; make uses uv).
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2
COPY --chown=airflow:root requirements.txt constraints.txt /opt/usdirect/
RUN pip install --no-cache-dir -c /opt/usdirect/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" -r /opt/usdirect/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/usdirect/
COPY --chown=airflow:root plugins/ /opt/usdirect/plugins/
RUN pip install --no-cache-dir --no-deps /opt/usdirect

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root include/ /opt/airflow/include/
# feed_url embeds its key: Airflow masks connection extras by key name, so name it sensitive.
ENV USDIRECT_CONFIG=/opt/airflow/include/usdirect.yaml \
    AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES=feed_url,reseller_token
