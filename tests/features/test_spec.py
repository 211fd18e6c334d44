"""The feature spec a model records at pretraining is its build's; differences are named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qanchor.features.spec import FeatureSpec


def test_a_model_records_the_spec_of_the_build_it_was_trained_on(
    tiny_model: Path, built_tiny: Path
) -> None:
    spec = FeatureSpec.from_build(built_tiny)
    assert FeatureSpec.from_model(tiny_model) == spec
    assert spec.max_bag_texts and spec.sources == sorted(spec.sources) and spec.sources
    other = replace(spec, max_events_per_source=spec.max_events_per_source + 1, max_bag_texts=7)
    assert spec.differences(spec) == []
    assert [d.split(":")[0] for d in spec.differences(other)] == [
        "max_events_per_source",
        "max_bag_texts",
    ]
