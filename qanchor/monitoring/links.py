"""Where the links of an alert e-mail point: absolute URLs an on-call engineer can click.

    links = LinkSettings()                  # QANCHOR_DRIFT_REPORTS_URL, QANCHOR_EVIDENTLY_URL, QANCHOR_AIRFLOW_URL
    links.report("runs/drift/2026-04-01/report.html")
    links.evidently_project(summary["workspace"]["project_id"])

A mail client cannot follow a relative path or a path on the drift job's disk, so every link is
built from a configured base URL. Without ``QANCHOR_DRIFT_REPORTS_URL`` the reports are linked
as absolute ``file://`` URIs, which work where the report directory is mounted (the machine of
``make monitor-ui``); the UIs default to the addresses ``make monitor-ui`` and ``make airflow``
(or a ``kubectl port-forward``) serve on.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LinkSettings(BaseSettings):
    """Base URLs of what an alert links to (environment variables ``QANCHOR_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="QANCHOR_", extra="ignore")

    drift_reports_url: str | None = Field(
        None,
        description="URL serving the drift report directory (QANCHOR_DRIFT_REPORTS: one "
        "sub-directory per run); None: link the files as file:// URIs",
    )
    evidently_url: str = Field(
        "http://127.0.0.1:8000", description="the Evidently UI over the drift workspace"
    )
    airflow_url: str = Field(
        "http://127.0.0.1:8080", description="the Airflow UI of qanchor_drift and qanchor_retrain"
    )

    def report(self, path: str | Path) -> str:
        """A report file of a run: ``<drift_reports_url>/<run dir>/<file>``, else its file URI."""
        path = Path(path)
        if self.drift_reports_url:
            return f"{_base(self.drift_reports_url)}/{quote(path.parent.name)}/{quote(path.name)}"
        return path.resolve().as_uri()

    def evidently_project(self, project_id: str) -> str:
        """The project's dashboard in the Evidently UI."""
        return f"{_base(self.evidently_url)}/projects/{project_id}"

    def evidently_run(self, project_id: str, run_id: str) -> str:
        """One run (snapshot) of the project in the Evidently UI."""
        return f"{self.evidently_project(project_id)}/reports/{run_id}"

    def airflow_dag(self, dag_id: str) -> str:
        """A DAG's page in the Airflow UI (its Trigger button and its runs)."""
        return f"{_base(self.airflow_url)}/dags/{dag_id}"


def _base(url: str) -> str:
    return url.rstrip("/")
