"""Where the orchestrated stages keep their runs: deployment variables, read by pydantic-settings.

RunSettings().root()    # $QANCHOR_WORKDIR, else $AIRFLOW_HOME/qanchor-runs, else runs/airflow
RunSettings().machine_bf16  # $QANCHOR_BF16: bf16 autocast of every stage that runs the model
ComponentSettings().package  # $QANCHOR_COMPONENTS, else components: the Kubeflow shell
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RunSettings(BaseSettings):
    """The run directories' root (``QANCHOR_WORKDIR`` or ``AIRFLOW_HOME``) and precision."""

    # An empty variable is unset, as a manifest's `QANCHOR_WORKDIR: ""` always meant.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    workdir: Path | None = Field(
        None,
        validation_alias="QANCHOR_WORKDIR",
        description="where runs go (the shared storage of every task in production)",
    )
    airflow_home: Path | None = Field(
        None,
        validation_alias="AIRFLOW_HOME",
        description="Airflow's home: without QANCHOR_WORKDIR, runs go to its qanchor-runs/",
    )

    machine_bf16: Literal["auto", "on", "off"] | None = Field(
        None,
        validation_alias="QANCHOR_BF16",
        description="bf16 autocast of pretrain, tune and evaluate in every run (a fact of the "
        "machines: 'off' where the CPU has no native bf16); unset: each preset's",
    )

    def root(self) -> Path:
        """The directory under which each run gets its own (absolute)."""
        if self.workdir:
            return self.workdir.expanduser().resolve()
        if self.airflow_home:
            return self.airflow_home.expanduser().resolve() / "qanchor-runs"
        return Path("runs/airflow").resolve()


class ComponentSettings(BaseSettings):
    """Where `qanchor pipeline` finds the Kubeflow components (``QANCHOR_COMPONENTS``)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    package: str = Field(
        "components",
        validation_alias="QANCHOR_COMPONENTS",
        description="the importable package of the components and their runner (a shell the "
        "library never imports by itself): installed with the platform, or in the working "
        "directory",
    )
