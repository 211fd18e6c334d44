"""Serving: KV-cached, query-conditioned embeddings over HTTP (the BentoML service's logic).

Modules:
    config    ``ServingConfig``: limits, and the deployment facts read from ``QANCHOR_*`` variables
    service   ``EmbeddingService``: embed, embed_batch, explain, scenarios, push, model swaps
    model     the served registry version with its scenario adapters
    warmup    one real request's path run before ready (and before a model swap), retried on failure
    jobs      embedding jobs: a batch's users x columns, embedded with the batch's own inputs
    users     a request's users from the Feast online store, keyed by feature version
    batcher   adaptive batching of concurrent requests onto one model thread
    auth      bearer API key (constant-time check) and body-size limit, as ASGI middleware
    metrics   prefix-cache counters for Prometheus
    http      request errors -> HTTP status and JSON body
    schemas   request field types and response models
    launch    ``make serve``: API key, promoted model, feature store, then ``bentoml serve``

``services/service.py`` is the BentoML shell around :class:`~qanchor.serving.service.EmbeddingService`.
Importing this package is cheap: torch and Feast load when the service is created.
"""
