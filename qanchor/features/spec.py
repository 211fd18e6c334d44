"""The feature definition a model was trained on, so every reader serves it the same inputs.

    spec = FeatureSpec.from_build("data/built")         # what a build (and its store) holds
    model_spec = FeatureSpec.from_model("runs/model")    # recorded at pretraining (or None)
    model_spec.differences(spec)                         # [] when they agree

A user's served row is shaped by the build's caps: the sources, the recent events kept per
source, the distinct texts kept in the whole-history bag, and the history window. A model read
rows of one shape in training; a feature store built with other caps would feed it rows it
never saw (fewer events, a truncated bag), silently. Pretraining records the spec in the model's
``config.json``; serving compares it with its store's build and refuses to serve on a mismatch.
The bag-of-events vocabulary travels with the model itself (``bag_vectorizer.npz``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FeatureSpec:
    """What shapes a served user row (the build config fields that do, and the sources)."""

    sources: list[str]
    max_events_per_source: int
    source_caps: dict[str, int] = field(default_factory=dict)
    max_bag_texts: int | None = None
    history_days: int | None = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FeatureSpec:
        """The spec of a build, from its ``manifest.json`` (the build's sources and config)."""
        c = manifest["config"]
        return cls(sorted(manifest["sources"]), int(c["max_events_per_source"]),
                   dict(c.get("source_caps") or {}), c.get("max_bag_texts"), c.get("history_days"))  # fmt: skip

    @classmethod
    def from_build(cls, built_dir: str | Path) -> FeatureSpec:
        return cls.from_manifest(json.loads((Path(built_dir) / "manifest.json").read_text()))

    @classmethod
    def from_model(cls, model_dir: str | Path) -> FeatureSpec | None:
        """The spec recorded at pretraining; None for a model trained before it was recorded."""
        recorded = json.loads((Path(model_dir) / "config.json").read_text()).get("feature_spec")
        return cls(**recorded) if recorded else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: FeatureSpec) -> list[str]:
        """``field: mine != other`` for every field that differs (empty: the same rows)."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
