"""The served model: a registry version loaded into an :class:`Embedder` with its scenarios.

    served = ServedModel.load(cfg, cache)      # promoted version (or cfg.model_tag)
    served.version, served.scenarios, served.suffixes(["cash_loan_default"], ["free text?"])

The prefix cache is passed in, not created: it outlives a model swap, and its keys carry the
model identity (``qanchor.model.identity``; the registry tag is ``qanchor:<identity>``), so entries of the previous model can never be hit (and are dropped on the swap).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from qanchor.features.config import FeatureStoreConfig
from qanchor.infer.engine import Embedder, Suffix
from qanchor.infer.prefix_cache import PrefixCache
from qanchor.serving.config import ServingConfig
from qanchor.serving.schemas import ScenarioInfo, UnknownScenario

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One loaded model version."""

    version: str  # the registry tag, e.g. qanchor:abc123
    path: Path
    embedder: Embedder
    scenarios: list[ScenarioInfo]

    @classmethod
    def load(cls, cfg: ServingConfig, cache: PrefixCache, tag: str | None = None) -> ServedModel:
        """Load ``tag``, else ``cfg.model_tag``, else the promoted version of ``cfg.model_name``."""
        from qanchor import registry
        from qanchor.io import sha256_tree
        from qanchor.tune.adapters import adapter_dir

        tag = tag or cfg.model_tag
        path = registry.load_promoted(cfg.model_name, tag=tag)
        version = registry.get(tag).tag if tag else registry.promoted(cfg.model_name).tag
        # Cache keys carry the model identity (from_dir hashed the directory; for a version
        # registered by qanchor it is the tag's version): no two models share prefixes.
        emb = Embedder.from_dir(path, cache=cache, max_batch=cfg.engine_batch)
        # The adapters the embedder loaded (from_dir), not a second read of their files.
        scenarios = [
            ScenarioInfo(
                name=name,
                query=sfx.query,
                adapter_version=sha256_tree(adapter_dir(path, name))[:12],
            )
            for name, sfx in emb.adapters.items()
        ]
        return cls(version, path, emb, scenarios)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def check(self, names: list[str]) -> None:
        """Raise :class:`UnknownScenario` (400, listing the valid names) for an unknown name."""
        unknown = [n for n in dict.fromkeys(names) if n not in self.embedder.adapters]
        if unknown:
            raise UnknownScenario(
                f"unknown scenario(s) {unknown}; valid: {self.names}",
                unknown=unknown,
                valid=self.names,
            )

    def suffixes(self, names: list[str], queries: list[str]) -> list[Suffix]:
        """Scenario suffixes (query + soft prompt) then free-text query suffixes."""
        self.check(names)
        # Free text is never looked up as a scenario name, even if it spells one.
        return [self.embedder.adapters[n] for n in names] + [Suffix(q) for q in queries]

    def spec_problem(self, store: FeatureStoreConfig) -> str | None:
        """Why this model must not be served from ``store`` (None: it may)."""
        from qanchor.features.spec import FeatureSpec

        trained = FeatureSpec.from_model(self.path)
        if trained is None:
            log.warning("%s records no feature spec (trained by an older qanchor): not checked",
                        self.version)  # fmt: skip
            return None
        diff = trained.differences(FeatureSpec.from_build(store.data))
        if not diff:
            return None
        return (f"model {self.version} was trained on features of another shape than the "
                f"feature store's build {store.data} serves ({'; '.join(diff)}): rebuild "
                "and materialise the store with the model's build settings")  # fmt: skip

    def query_of(self, scenario: str | None, query: str | None) -> str:
        """The query text of a scenario name, or the free-text query itself."""
        if scenario is not None:
            self.check([scenario])
            return self.embedder.adapters[scenario].query
        return query or ""
