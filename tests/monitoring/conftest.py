"""Fixtures of the drift tests: built datasets with and without shift (the SMTP server is in
the root conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.data.synth import SynthConfig, synth

# 400 users: at ~100 users K-S tests on the synthetic aggregates cannot tell a moderate shift from
# sampling noise; at 400 the shifted world drifts on ~40% of the columns, a fresh sample of the
# same world on at most ~8% (threshold 20%), and synth + build still take ~2 s.
USERS = 400
DRIFT_SCENARIOS = ["cash_loan_default", "churn_next_month"]
SHIFT = {"shift_after": "2026-02-01", "shift_strength": 2.0}


def _built(root: Path, name: str, **synth_kw) -> Path:
    raw = synth(SynthConfig(users=USERS, **synth_kw), root / name / "raw")
    return build_dataset(raw, root / name / "built", resolve(BuildConfig, "tiny"))


@pytest.fixture(scope="session")
def drift_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built synthetic datasets: the reference (seed 0), and two fresh samples (seed 1) of the
    same world, one with the generator's behaviour shift and one without."""
    root = tmp_path_factory.mktemp("driftdata")
    return {
        "reference": _built(root, "reference", seed=0),
        "stationary": _built(root, "stationary", seed=1),
        "shifted": _built(root, "shifted", seed=1, **SHIFT),
    }


@pytest.fixture(scope="session")
def drift_model(
    tiny_model: Path, built_tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny model with two tuned scenarios (embedding and score drift need adapters)."""
    import shutil

    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    model = tmp_path_factory.mktemp("drift-model") / "model"
    shutil.copytree(tiny_model, model)
    overrides = {"share": "none", "val_guard": False}
    tune_model(model, built_tiny, resolve(TuneConfig, "tiny", overrides=overrides), DRIFT_SCENARIOS)
    return model
