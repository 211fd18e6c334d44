"""The qanchor BentoML service: KV-cached, query-conditioned user embeddings for consumers.

    make serve                                            # promoted model on 127.0.0.1:3000
    QANCHOR_API_KEY=... bentoml serve services.service:QAnchor --host 127.0.0.1

A thin shell: every API is one call into :class:`qanchor.serving.service.EmbeddingService`.
Settings come from ``QANCHOR_*`` variables (``qanchor.serving.config.ENV``); every route but
/livez, /readyz, /healthz and /metrics needs ``Authorization: Bearer <QANCHOR_API_KEY>``.
"""

from __future__ import annotations

import logging

import bentoml

from qanchor.serving import schemas as S
from qanchor.serving.auth import RequestGuard
from qanchor.serving.config import ServingConfig
from qanchor.serving.http import http_errors, quiet_client_errors

quiet_client_errors()  # a 400 is one INFO line, not an ERROR with a traceback


# One worker process: the prefix cache lives in it, and torch uses every core for one batch.
# Threads only wait: requests queue in the adaptive batcher while one thread runs the model.
@bentoml.service(name="qanchor", workers=1, threads=32, traffic={"timeout": 120})
class QAnchor:
    def __init__(self) -> None:
        # prometheus_client after BentoML set up its multiprocess registry: values reach /metrics.
        import prometheus_client

        from qanchor.serving.service import EmbeddingService

        # BentoML's root logger shows WARNING and up: the warm-up and model-swap lines are INFO.
        logging.getLogger("qanchor").setLevel(logging.INFO)
        # Loads the model and warms it up (one real request's path) before /readyz turns 200.
        self.core = EmbeddingService(ServingConfig.from_env(), metrics=prometheus_client)

    def __is_ready__(self) -> bool:
        return self.core.ready()

    @bentoml.api
    @http_errors
    def embed(
        self, user_id: S.UserId, scenario: S.Text | None = None, query: S.Text | None = None
    ) -> S.EmbedResult:
        """A user's embedding for a scenario name or a free-text query (give exactly one)."""
        return self.core.embed(user_id, scenario, query)

    @bentoml.api
    @http_errors
    def embed_batch(
        self,
        user_ids: list[S.UserId],
        scenarios: list[S.Text] | None = None,
        queries: list[S.Text] | None = None,
    ) -> S.BatchResult:
        """Embeddings of users x (scenarios, then queries), adaptively batched with other requests."""
        return self.core.embed_batch(user_ids, scenarios, queries)

    @bentoml.api
    @http_errors
    def explain(
        self,
        user_id: S.UserId,
        scenario: S.Text | None = None,
        query: S.Text | None = None,
        max_tokens: S.Tokens = 32,
    ) -> S.Explanation:
        """A short text description of a user for a scenario's query or a free-text query."""
        return self.core.explain(user_id, scenario, query, max_tokens)

    @bentoml.api
    @http_errors
    def scenarios(self) -> S.ScenarioList:
        """The served model version and its scenarios: names, queries, adapter versions."""
        return self.core.scenarios()

    @bentoml.api
    @http_errors
    def push(self, events: list[S.PushEvent], create: bool = False) -> S.PushResult:
        """New events into users' online histories; their cached prefixes are dropped.
        Unknown users are a 404 unless ``create`` is true; events dated after now + 5 minutes
        are a 400."""
        return self.core.push(events, create)


QAnchor.add_asgi_middleware(RequestGuard, max_body_bytes=ServingConfig.from_env().max_body_bytes)
