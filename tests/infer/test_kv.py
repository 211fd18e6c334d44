"""The prefix/suffix engine alone, on a tiny random Llama: cached passes = one full forward."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from qanchor.eval.llm_baseline import llm_untrained_features
from qanchor.infer.kv import KVEngine, PrefixKV
from qanchor.infer.threads import torch_threads
from qanchor.model.tiny import tiny_backbone

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def engine() -> KVEngine:
    model, _ = tiny_backbone(seed=0)
    return KVEngine(model.eval().model, bf16=False, device=CPU)


def padded(seqs: list[torch.Tensor], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, n, d] embeddings padded with zeros (in front if ``left``) and their [B, n] mask."""
    n = max(len(x) for x in seqs)
    embs, masks = [], []
    for x in seqs:
        pad, ones = x.new_zeros(n - len(x), x.shape[1]), torch.ones(len(x), dtype=torch.long)
        zeros = torch.zeros(n - len(x), dtype=torch.long)
        embs.append(torch.cat([pad, x] if left else [x, pad]))
        masks.append(torch.cat([zeros, ones] if left else [ones, zeros]))
    return torch.stack(embs), torch.stack(masks)


@torch.no_grad()
def test_prefix_then_suffix_equals_the_full_forward(engine: KVEngine) -> None:
    g = torch.Generator().manual_seed(0)
    d = engine.decoder.config.hidden_size
    pre = [torch.randn(n, d, generator=g) for n in (5, 9, 2)]
    sfx = [torch.randn(n, d, generator=g) for n in (3, 1, 4)]
    states = engine.prefix(*padded(pre, left=True))
    h = engine.suffix(states, *padded(sfx, left=False))
    full = engine.forward(*padded([torch.cat(x) for x in zip(pre, sfx, strict=True)], left=False))
    for b, (p, s) in enumerate(zip(pre, sfx, strict=True)):
        at = slice(len(p), len(p) + len(s))
        torch.testing.assert_close(h[b, : len(s)], full[b, at], atol=1e-5, rtol=0)
    assert not torch.allclose(h[0, 0], h[1, 0])  # rows differ, so the check is not vacuous
    # One position per row, the last layer computed there only: the same states.
    at = torch.tensor([2, 0, 3])
    u = engine.suffix_at(states, *padded(sfx, left=False), at)
    torch.testing.assert_close(u, h[torch.arange(3), at], atol=1e-5, rtol=0)
    # Split into unpadded rows and restacked in another order and batch: the same suffix states.
    rows = states.rows()
    assert [n for _, n in rows] == [5, 9, 2] and rows[0][0][0][0].shape[1] == 5
    again = PrefixKV.stack([rows[i][0] for i in (2, 0)], [rows[i][1] for i in (2, 0)], CPU)
    h2 = engine.suffix(again, *padded([sfx[2], sfx[0]], left=False))
    torch.testing.assert_close(h2[0, :4], h[2, :4], atol=1e-5, rtol=0)
    torch.testing.assert_close(h2[1, :3], h[0, :3], atol=1e-5, rtol=0)
    # The prefix states are left as they were: they serve any number of suffixes.
    torch.testing.assert_close(engine.suffix(states, *padded(sfx, left=False)), h, atol=0, rtol=0)


@pytest.mark.parametrize("batch", [2, 1])
def test_the_llm_baseline_is_the_last_state_of_text_then_query(batch: int) -> None:
    """``llm_untrained`` through the engine = one uncached pass over the user's text + query,
    whatever batch (of similar lengths, not input order) the user was run in; batches of one
    user run two at a time on two threads."""
    snaps = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "event_source": [["web", "shop"], ["web"], ["shop"]],
            "event_text": [["read news", "bought shoes"], ["checked the weather today"], ["hat"]],
        }
    )
    queries = {"buys": "Will they buy?", "reads": "Do they mostly read the news?"}
    with torch_threads(2):
        feats = llm_untrained_features("tiny", None, snaps, queries, per_source=2, batch=batch)
    model, tok = tiny_backbone()
    texts = {
        "a": "shop: bought shoes\nweb: read news",
        "b": "web: checked the weather today",
        "c": "shop: hat",
    }
    for s, q in queries.items():
        assert list(feats[s].index) == ["a", "b", "c"]  # the callers' order, not the batches'
        for u, text in texts.items():
            full = "User events:\n" + text + "\nQuery: " + q + "\nAnswer:"
            ids = tok(full, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                want = model.model(input_ids=ids).last_hidden_state[0, -1]
            got = torch.tensor(feats[s].loc[u].to_numpy())
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
