"""The KV-cached embedder against the uncached reference, on a tiny pretrained model."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qanchor.infer.engine import Embedder, Suffix, embed_rows_shown
from qanchor.infer.explain import explain
from qanchor.infer.prefix_cache import PrefixCache, PrefixEntry
from qanchor.infer.threads import torch_threads


@pytest.fixture(scope="module")
def embedder(tiny_model: Path, built_tiny: Path) -> Embedder:
    emb = Embedder.from_dir(tiny_model, max_batch=7)  # odd batch: chunks mix users and suffixes
    prof = built_tiny / "profiles.parquet"
    emb.load_users(
        pd.read_parquet(built_tiny / "snapshots.parquet"),
        pd.read_parquet(prof) if prof.exists() else None,
    )
    return emb


def suffixes(emb: Embedder) -> list[Suffix]:
    d = emb.model.causal_lm.config.hidden_size
    g = torch.Generator().manual_seed(0)
    return [Suffix("Will this user repay a cash loan?"), Suffix("Churn next month?", torch.randn(3, d, generator=g) * 0.2),
            Suffix("Will they buy a travel package in the next month, given their history?", torch.randn(2, d, generator=g))]  # fmt: skip


def test_cached_equals_uncached(embedder: Embedder) -> None:
    rows = list(range(9))
    sfx = suffixes(embedder)
    cached = embedder.embed_rows(rows, sfx)
    uncached = embedder.embed_rows_uncached(rows, sfx)
    assert cached.shape == (9, 3, embedder.model.cfg.emb_dim)
    torch.testing.assert_close(cached, uncached, atol=1e-4, rtol=0)
    assert cached[:, 0].std(0).mean() > 1e-4  # users differ, so the check is not vacuous


def test_prompts_leave_the_prefix_cache_valid(embedder: Embedder) -> None:
    rows = [3, 4]
    before = [e.kv[0][0].clone() for e in embedder.prefixes(rows)]
    hits = embedder.cache.hits
    embedder.embed_rows(rows, suffixes(embedder))  # runs prompt suffixes on the cached prefixes
    after = embedder.prefixes(rows)
    assert embedder.cache.hits >= hits + 4
    for b, a in zip(before, after, strict=True):
        assert torch.equal(b, a.kv[0][0])
    fresh = embedder.prefixes(rows, use_cache=False)
    for a, f in zip(after, fresh, strict=True):
        torch.testing.assert_close(a.kv[-1][1], f.kv[-1][1], atol=1e-5, rtol=0)


def test_embedding_depends_on_the_query_and_the_prompt(embedder: Embedder) -> None:
    sfx = suffixes(embedder)
    out = embedder.embed_rows([0], [sfx[0], Suffix(sfx[0].query, sfx[1].prompt), sfx[1]])
    assert not torch.allclose(out[0, 0], out[0, 1]) and not torch.allclose(out[0, 0], out[0, 2])


def test_free_text_query_and_unknown_user(embedder: Embedder) -> None:
    uid = embedder.table.user_ids[0]
    vec = embedder.embed([uid], ["any question at all?"])
    assert vec.shape == (1, 1, embedder.model.cfg.emb_dim)
    with pytest.raises(KeyError, match="unknown users"):
        embedder.embed(["nobody"], ["q"])


def test_prefix_cache_is_bounded_lru_with_counters() -> None:
    def entry(n: int) -> PrefixEntry:
        return PrefixEntry([(torch.zeros(1, n, 4), torch.zeros(1, n, 4))], n)  # 32n bytes

    cache = PrefixCache(max_bytes=32 * 10)
    cache.put("a", entry(4))
    cache.put("b", entry(4))
    assert cache.get("a") is not None  # a is now most recent
    cache.put("c", entry(4))  # over budget: evicts b (least recently used)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.get("b") is None
    assert cache.stats() | {} == {
        "entries": 2,
        "bytes": 256,
        "max_bytes": 320,
        "hits": 1,
        "misses": 1,
        "evictions": 1,
    }
    cache.put("huge", entry(100))  # larger than the budget: not stored, nothing evicted
    assert "huge" not in cache and len(cache) == 2
    assert cache.invalidate(lambda k: k == "a") == 1 and cache.bytes == 128


def test_explain_reuses_the_cached_prefix_and_returns_text(embedder: Embedder) -> None:
    uid = embedder.table.user_ids[2]
    embedder.prefixes(embedder.rows([uid]))
    hits = embedder.cache.hits
    query = "What is this user most likely to do next period?"
    text = explain(embedder.engine, embedder.users, uid, query, max_new_tokens=8)
    assert isinstance(text, str) and embedder.cache.hits == hits + 1
    assert text == explain(embedder.engine, embedder.users, uid, query, max_new_tokens=8)


def test_bf16_autocast_stays_close_to_fp32(tiny_model: Path, built_tiny: Path, embedder) -> None:
    # bf16 is a speed setting: cached and uncached still agree and both track fp32 closely.
    emb16 = Embedder.from_dir(tiny_model, max_batch=7, bf16="on")
    emb16.load_users(pd.read_parquet(built_tiny / "snapshots.parquet"),
                     pd.read_parquet(built_tiny / "profiles.parquet"))  # fmt: skip
    rows, sfx = list(range(6)), suffixes(embedder)
    fp32, cached = embedder.embed_rows(rows, sfx), emb16.embed_rows(rows, sfx)
    assert cached.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(cached, fp32, dim=-1)
    assert cos.min() > 0.98, cos
    torch.testing.assert_close(cached, emb16.embed_rows_uncached(rows, sfx), atol=3e-2, rtol=0)
    assert not torch.equal(cached, fp32)  # autocast really ran in bf16


def test_pairs_match_the_cross_product(embedder: Embedder) -> None:
    """Serving's flat (user, suffix) pairs give the vectors of the per-request cross product."""
    rows, sfx = [2, 5, 7], suffixes(embedder)
    grid = embedder.embed_rows(rows, sfx)
    pairs = [(2, 0), (0, 2), (1, 1), (0, 0), (2, 2), (1, 0)]
    flat = embedder.embed_pairs(rows, sfx, pairs)
    torch.testing.assert_close(flat, torch.stack([grid[i, j] for i, j in pairs]), atol=1e-5, rtol=0)


def test_a_query_text_runs_once_per_block_and_each_suffix_its_tail(
    embedder: Embedder, monkeypatch
) -> None:
    """The bare query and its tuned prompt share the query text's states: a block of users runs
    that text once, then each of the two only its prompt and <USER_EMB> (no padding); a text
    no other suffix shares runs in one pass with its suffix."""
    kv = embedder.engine.kv
    texts: list[tuple[int, int]] = []
    tails: list[tuple[int, int]] = []
    extend, suffix_at = kv.extend, kv.suffix_at

    def spy_extend(pre, embeds):
        texts.append(tuple(embeds.shape[:2]))
        return extend(pre, embeds)

    def spy_tail(pre, embeds, mask, at):
        tails.append(tuple(embeds.shape[:2]))
        assert bool(mask.all()) and bool((at == embeds.shape[1] - 1).all())
        return suffix_at(pre, embeds, mask, at)

    monkeypatch.setattr(kv, "extend", spy_extend)
    monkeypatch.setattr(kv, "suffix_at", spy_tail)
    sfx = suffixes(embedder)
    sfx.append(Suffix(sfx[1].query))  # the second query bare, beside its prompt
    got = embedder.embed_rows(list(range(9)), sfx, block=9)
    parts = [embedder.engine.suffix_embeds(s) for s in sfx]
    assert texts == [(9, parts[1].n_text)]  # the shared text, once
    # the shared text's tails: 4 tokens (3 prompt tokens) and 1 (bare); the other two suffixes
    # whole; 9 users in passes of at most 7 (max_batch)
    lengths = [4, 1, parts[0].embeds.shape[0], parts[2].embeds.shape[0]]
    assert sorted(tails) == sorted((m, n) for n in lengths for m in (7, 2))
    monkeypatch.undo()
    torch.testing.assert_close(got, embedder.embed_rows_uncached(list(range(9)), sfx),
                               atol=1e-4, rtol=0)  # fmt: skip
    assert (got[:, 1] - got[:, 3]).abs().max() > 1e-3  # the prompt matters: not one suffix


def test_tuning_passes_give_the_one_pass_suffix_and_its_prompt_gradient(
    embedder: Embedder,
) -> None:
    """Tuning's forward (text without gradients, then the prompt's tail) = the whole suffix in
    one pass, in u and in the gradient that reaches the prompt."""
    eng = embedder.engine
    d = embedder.model.causal_lm.config.hidden_size
    prompt = (torch.randn(3, d, generator=torch.Generator().manual_seed(1)) * 0.2).requires_grad_()
    entries = embedder.prefixes([0, 1, 2])
    part = embedder.suffix_embeds(Suffix("Churn next month?", prompt))
    w = torch.randn(3, embedder.model.cfg.emb_dim, generator=torch.Generator().manual_seed(2))
    u = embedder.suffix_forward(entries, [part] * 3)
    (u * w).sum().backward()
    grad, prompt.grad = prompt.grad.clone(), None
    pre, summary = eng._stack(entries)
    ones = torch.ones(3, part.embeds.shape[0], dtype=torch.long)
    part = embedder.suffix_embeds(Suffix("Churn next month?", prompt))  # a fresh graph
    h = eng.kv.suffix(pre, part.embeds.expand(3, -1, -1), ones)[:, part.at]
    want = eng.model.head(h.float(), "anchor", summary)
    (want * w).sum().backward()
    torch.testing.assert_close(u, want, atol=1e-5, rtol=0)
    assert grad.abs().max() > 0
    torch.testing.assert_close(grad, prompt.grad, atol=1e-5, rtol=1e-4)


def test_cache_entries_keep_the_user_token_for_the_head(embedder: Embedder) -> None:
    entry = embedder.prefixes([0])[0]
    assert embedder.model.cfg.user_skip and entry.user is not None
    # The user token, and the bag token beside it (tiny has a bag channel).
    n = embedder.model.n_summary
    assert n == 2 and entry.user.shape == (n * embedder.model.causal_lm.config.hidden_size,)
    kv_bytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in entry.kv)
    user_bytes = entry.user.numel() * entry.user.element_size()
    # ...and what the scenarios' bag heads read: the TF-IDF row and the tabular input.
    (idx, val), tab = entry.head_input
    assert len(idx) == len(val) > 0 and tab is not None
    assert entry.nbytes == kv_bytes + user_bytes + idx.nbytes + val.nbytes + tab.nbytes


def test_request_inputs_used_concurrently_do_not_interfere(
    tiny_model: Path, built_tiny: Path
) -> None:
    """Two requests' users on one engine, from two threads: each gets its own users' vectors.

    Both requests hold the same user ids with other histories, so only their own inputs (and
    the feature version in the cache key) tell them apart; the cache holds about three prefixes,
    so each request keeps evicting the other's.
    """
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet").head(6)
    prof = pd.read_parquet(built_tiny / "profiles.parquet")
    fewer = snaps.assign(event_source=snaps["event_source"].map(lambda x: x[:-1]),
                         event_text=snaps["event_text"].map(lambda x: x[:-1]))  # fmt: skip
    ids = snaps["user_id"].tolist()
    probe = Embedder.from_dir(tiny_model)
    one = probe.engine.prefixes(probe.inputs.load(snaps, prof), [0])[0].nbytes
    emb = Embedder.from_dir(tiny_model, max_batch=5, cache_bytes=3 * one + one // 2)
    sfx = [emb.suffix("Will this user repay a cash loan?"), emb.suffix("Churn next month?")]
    want = {}
    for name, frame in (("a", snaps), ("b", fewer)):  # each request alone, from its own table
        alone = Embedder.from_dir(tiny_model, max_batch=5)
        alone.load_users(frame, prof)
        want[name] = alone.embed_rows(alone.rows(ids), sfx)
    assert (want["a"] - want["b"]).abs().max() > 1e-4  # the histories really differ

    def serve(name: str, frame: pd.DataFrame, start: threading.Barrier) -> list[torch.Tensor]:
        start.wait()
        out = []
        for _ in range(4):
            users = emb.request_users(frame, prof, {u: name for u in ids})
            out.append(emb.engine.embed_rows(users, users.rows(ids), sfx))
        return out

    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        runs = {n: pool.submit(serve, n, f, start) for n, f in (("a", snaps), ("b", fewer))}
        got = {n: r.result() for n, r in runs.items()}
    for name, vecs in got.items():
        for v in vecs:
            torch.testing.assert_close(v, want[name], atol=1e-5, rtol=0)
    # Inputs built while a request's prefixes were cached pin them: another request evicting
    # them in between does not fail this one.
    # (Only the last user first: it is then surely cached, whatever the threads left behind.)
    last = [ids[-1]]
    emb.embed(last, ["Anything?"], users=emb.request_users(snaps, prof, {u: "a" for u in ids}))
    pinned = emb.request_users(snaps, prof, {u: "a" for u in ids})
    assert pinned.cached(ids[-1]) and pinned.table.inputs[-1] is None
    emb.embed(ids, ["Anything?"], users=emb.request_users(fewer, prof, {u: "b" for u in ids}))
    assert (ids[-1], "a", emb.model_version) not in emb.cache
    torch.testing.assert_close(
        emb.engine.embed_rows(pinned, pinned.rows(ids), sfx), want["a"], atol=1e-5, rtol=0
    )


def test_a_user_without_history_events_gets_an_embedding(
    tiny_model: Path, built_tiny: Path
) -> None:
    """A user whose every event falls after the cutoff has empty snapshot lists: the prefix is
    built from the profile (and empty pools) alone, alone in a batch or beside other users."""
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet").head(3).reset_index(drop=True)
    prof = pd.read_parquet(built_tiny / "profiles.parquet")
    list_columns = [c for c in snaps.columns if c.startswith(("event_", "bag_"))]
    for c in list_columns:
        snaps.at[0, c] = snaps.at[0, c][:0]
    for bf16 in ("off", "on"):
        _check_empty_history(Embedder.from_dir(tiny_model, max_batch=5, bf16=bf16), snaps, prof)


def _check_empty_history(emb: Embedder, snaps: pd.DataFrame, prof: pd.DataFrame) -> None:
    emb.load_users(snaps, prof)
    sfx = [emb.suffix("Will this user repay a cash loan?")]
    together = emb.embed_rows([0, 1, 2], sfx)
    assert together.shape == (3, 1, emb.model.cfg.emb_dim)
    assert torch.isfinite(together).all()
    alone = emb.embed_rows([0], sfx, use_cache=False)
    torch.testing.assert_close(alone[0], together[0], atol=1e-4, rtol=0)
    assert (together[0] - together[1]).abs().max() > 1e-4


def test_batch_embedding_split_over_cores_equals_one_part(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluation and the tuning guard embed a chunk's users in one part per torch thread."""
    rows, sfx = list(range(64)), suffixes(embedder)
    with torch_threads(1):
        one = embed_rows_shown(embedder, rows, sfx, "one part", use_cache=False)
    threads, embed_rows = set(), embedder.embed_rows

    def spy(*args, **kwargs) -> torch.Tensor:
        threads.add(threading.current_thread().name)
        return embed_rows(*args, **kwargs)

    monkeypatch.setattr(embedder, "embed_rows", spy)
    with torch_threads(2):
        split = embed_rows_shown(embedder, rows, sfx, "two parts", use_cache=False)
    assert len(threads) == 2
    np.testing.assert_allclose(split, one, atol=1e-5, rtol=0)
    assert one[:, 0].std(0).mean() > 1e-4
