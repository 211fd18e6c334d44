"""The quality gate: may a candidate model replace the one being served?

Rule: never promote a candidate whose mean AUC is below the serving model's by more than
``tolerance`` *on the same test users and the same scenarios*: the candidate's build, where the
serving model is re-scored through the same probe (``qanchor.eval.evaluate.rescore``). A served
model's own metrics.json comes from its older build and possibly other scenarios, so it is
recorded for information only. The decision also carries a paired bootstrap interval of the
difference over test users, the per-scenario AUCs, and the candidate's margin over its best
baseline. The first model (nothing served yet) passes if its metrics are valid.

A served model trained on another dataset or feature schema (other event sources or caps, or
tabular columns this build lacks: :func:`schema_differences`) is no alternative on the
candidate's data: the service refuses to serve a model whose feature spec differs from its
store's build, and re-scored on inputs it never read it would be measured on nothing (with no
shared source it cannot even be embedded). So it is not compared with: the candidate is judged
like a first model on its own data, and the decision names the differences
(:func:`other_schema`). Other scenarios alone do not count: the model is query-conditioned, and
a scenario it has no adapter for is scored with its query.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qanchor.registry import ModelVersion

GATED_MODEL = "qanchor_tuned"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and why.

    ``candidate_auc`` and ``serving_auc`` are means over ``scenarios``, both models scored on
    the candidate's test users; ``interval`` is the paired bootstrap interval of their
    difference; ``serving_recorded_auc`` is the served model's mean in its own metrics.json;
    ``served_schema_differences`` say why the served model was not comparable (empty: it was).
    """

    passed: bool
    reason: str
    candidate_auc: float | None
    serving_auc: float | None
    tolerance: float
    scenarios: list[str] = field(default_factory=list)
    per_scenario: dict[str, dict[str, float]] = field(default_factory=dict)
    interval: dict[str, Any] | None = None
    serving_recorded_auc: float | None = None
    bare_query_scenarios: list[str] = field(default_factory=list)
    versus_baseline: dict[str, Any] | None = None
    served_schema_differences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_auc(metrics: dict[str, Any] | None, model: str = GATED_MODEL) -> float | None:
    """The gated model's mean AUC in a metrics.json dict, or None if absent or not a number."""
    try:
        value = float(metrics["models"][model]["mean_auc"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def first_model(candidate_metrics: dict[str, Any], tolerance: float) -> GateDecision:
    """Nothing is served yet: the candidate passes if its metrics are valid."""
    cand = mean_auc(candidate_metrics)
    if cand is None:
        return GateDecision(False, f"candidate has no valid {GATED_MODEL} mean_auc", None, None, tolerance)  # fmt: skip
    return GateDecision(True, f"first model: mean AUC {cand:.4f}, nothing served yet", cand, None, tolerance)  # fmt: skip


def schema_differences(model_dir: str | Path, built_dir: str | Path) -> list[str]:
    """How the inputs a served model was trained on differ from what a build holds ([]: none).

    The feature spec (event sources and caps) as the service checks it before serving a model
    from a store, then the tabular columns the model's profile featurizer reads that the build
    has none of (a profile of another schema would be read as all missing).
    """
    from qanchor.features.spec import FeatureSpec
    from qanchor.model.profile import META_COLUMNS

    trained = FeatureSpec.from_model(model_dir)  # None: an older model, spec not recorded
    differences = trained.differences(FeatureSpec.from_build(built_dir)) if trained else []
    featurizer = json.loads((Path(model_dir) / "config.json").read_text())["profile_featurizer"]
    read = {*featurizer.get("numeric", {}), *featurizer.get("categorical", {})}
    missing = sorted(read - _tabular_columns(Path(built_dir)) - set(META_COLUMNS))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        differences.append(f"tabular columns missing from the build: {shown}")
    return differences


def _tabular_columns(built: Path) -> set[str]:
    """The columns of the build's tabular source (profiles and aggregates), read from the
    Parquet schemas alone."""
    import pyarrow.parquet as pq

    files = [built / "profiles.parquet", built / "aggregates.parquet"]
    return {c for f in files if f.is_file() for c in pq.read_schema(f).names}


def other_schema(
    candidate_metrics: dict[str, Any], differences: list[str], tolerance: float
) -> GateDecision:
    """The served model was trained on another dataset or feature schema: not comparable, so the
    candidate is judged alone, as a first model (it passes if its metrics are valid)."""
    alone = first_model(candidate_metrics, tolerance)
    why = (f"the served model was trained on another dataset or feature schema "
           f"({'; '.join(differences)}): the service would not serve it on this build's "
           "features, so it is not comparable and was not re-scored")  # fmt: skip
    verdict = (f"passed as a first model on this data (mean AUC {alone.candidate_auc:.4f}): "
               if alone.passed else f"rejected: {alone.reason}; ")  # fmt: skip
    return replace(alone, reason=verdict + why, served_schema_differences=list(differences))


def rescored(
    eval_dir: Path, built_dir: Path, serving: ModelVersion, eval_config: dict | None,
    tolerance: float,
) -> GateDecision:  # fmt: skip
    """The candidate's test scores (``eval_dir``) against the served model's, re-scored on the
    candidate's build with the candidate's recorded evaluation settings (``eval_config``)."""
    import pandas as pd

    from qanchor.config import resolve
    from qanchor.eval.evaluate import SCORES_FILE, EvalConfig, rescore
    from qanchor.eval.probe import results_from_frame

    candidate = results_from_frame(pd.read_parquet(eval_dir / SCORES_FILE), GATED_MODEL)
    # The served model is scored with the settings the candidate was evaluated with (its
    # precision above all: bf16 and fp32 embeddings of one model differ); an evaluation
    # that predates the record falls back to `small`.
    cfg = resolve(EvalConfig, None if eval_config else "small", overrides=eval_config)
    served, bare = rescore(serving.path, built_dir, cfg)
    decision = compare(candidate, served, tolerance)
    return replace(
        decision, serving_recorded_auc=mean_auc(serving.metrics), bare_query_scenarios=bare
    )


def compare(
    candidate: dict[str, tuple], serving: dict[str, tuple], tolerance: float = 0.01,
    n_boot: int = 1000, seed: int = 0,
) -> GateDecision:  # fmt: skip
    """Candidate against the served model, both scored on the same test users.

    Args:
        candidate, serving: scenario -> (y_test, scores), rows of one scenario in the same user
            order (both come from probes over the candidate's labels).
        tolerance: how far (in mean AUC) the candidate may fall below the served model.
        n_boot, seed: the paired bootstrap of the difference.
    """
    from qanchor.eval.metrics import auc_ks, paired_bootstrap

    shared = [s for s in candidate if s in serving]
    if not shared:
        return GateDecision(False, "no scenario scored for both the candidate and the served "
                            "model on the candidate's test users", None, None, tolerance)  # fmt: skip
    per = {s: {"candidate": round(auc_ks(*candidate[s])[0], 4),
               "serving": round(auc_ks(*serving[s])[0], 4)} for s in shared}  # fmt: skip
    cand = sum(p["candidate"] for p in per.values()) / len(per)
    serv = sum(p["serving"] for p in per.values()) / len(per)
    boot = paired_bootstrap({s: candidate[s] for s in shared}, {s: serving[s] for s in shared},
                            n_boot=n_boot, seed=seed)  # fmt: skip
    interval = {k: round(boot[k], 4) for k in ("diff", "low", "high")} | {"level": boot["level"]}
    delta = cand - serv
    span = f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"
    where = f"on the same {len(shared)} scenario(s) and test users"
    if delta < -tolerance:
        reason = (f"rejected: mean AUC {cand:.4f} is {-delta:.4f} below the served model's "
                  f"{serv:.4f} {where} (95% interval of the difference {span}; tolerance {tolerance})")  # fmt: skip
        return GateDecision(False, reason, cand, serv, tolerance, shared, per, interval)
    reason = (f"passed: mean AUC {cand:.4f} vs served {serv:.4f} {where} "
              f"(delta {delta:+.4f}, 95% interval {span}; tolerance {tolerance})")  # fmt: skip
    return GateDecision(True, reason, cand, serv, tolerance, shared, per, interval)


def gate(
    candidate_metrics: dict[str, Any],
    serving_metrics: dict[str, Any] | None,
    tolerance: float = 0.01,
) -> GateDecision:
    """Compare recorded means only (no re-scoring): kept for a served model that cannot be
    re-scored; :func:`compare` is the gate's rule whenever it can be.

    Args:
        candidate_metrics: the candidate's metrics.json (DESIGN section 4).
        serving_metrics: the serving model's metrics.json, or None if nothing is served yet.
        tolerance: how far (in AUC) the candidate may fall below the serving model.
    """
    cand = mean_auc(candidate_metrics)
    serving = mean_auc(serving_metrics) if serving_metrics is not None else None
    if cand is None or serving_metrics is None:
        return first_model(candidate_metrics, tolerance)
    if serving is None:
        # A serving model without usable metrics cannot be defended against: replace it.
        return GateDecision(True, f"serving model has no valid mean AUC; candidate {cand:.4f}", cand, None, tolerance)  # fmt: skip
    delta = cand - serving
    if delta < -tolerance:
        reason = f"rejected: mean AUC {cand:.4f} is {-delta:.4f} below serving {serving:.4f} (tolerance {tolerance})"
        return GateDecision(False, reason, cand, serving, tolerance)
    reason = f"passed: mean AUC {cand:.4f} vs serving {serving:.4f} (delta {delta:+.4f}, tolerance {tolerance})"
    return GateDecision(True, reason, cand, serving, tolerance)


def versus_baseline(
    metrics: dict[str, Any], verdict_line: str | None = None
) -> dict[str, Any] | None:
    """The candidate's mean AUC against its best baseline in the same evaluation (recorded with
    the decision, not part of the rule), with the report's verdict line."""
    from qanchor.eval.verdict import QANCHOR_MODELS

    cand = mean_auc(metrics)
    baselines = {
        m: mean_auc(metrics, m) for m in metrics.get("models", {}) if m not in QANCHOR_MODELS
    }
    baselines = {m: v for m, v in baselines.items() if v is not None}
    if cand is None or not baselines:
        return None
    best = max(baselines, key=baselines.__getitem__)
    return {"baseline": best, "baseline_auc": baselines[best], "candidate_auc": cand,
            "margin": round(cand - baselines[best], 4), "verdict": verdict_line}  # fmt: skip
