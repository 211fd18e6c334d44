"""Inference: KV-cached multi-scenario embedding, explanations, batch refresh.

Modules:
    prefix_cache   an LRU cache of users' prefix KV states, bounded in bytes
    engine         ``Embedder``: encode each user prefix once, run only the query suffix per scenario
    refresh        embed all users x all scenarios to parquet shards; incremental mode
"""
