"""Inference: KV-cached multi-scenario embedding, explanations, batch refresh.

Modules:
    kv             ``KVEngine``: a decoder's prefix pass (-> reusable KV states) and suffix pass
    prefix_cache   an LRU cache of users' prefix KV states, bounded in bytes
    users          ``UserInputs`` (users' model inputs and feature versions) and their builder
    anchor         ``AnchorEngine``: the model's stateless engine; each prefix once, a suffix per query
    engine         ``Embedder``: a model directory's engine, input builder, adapters and loaded users
    explain        decode a short description of a user for a query from the cached prefix
    refresh        embed all users x all scenarios to parquet shards; incremental mode
"""
