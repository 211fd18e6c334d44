"""The ``llm_untrained`` baseline: the backbone before our pretraining reads the events as text.

Per user, the most recent events per source are written out as plain text; the query follows,
and the last token's hidden state is the embedding (as a generic LLM embedder would do). The text
prefix is encoded once per user and its KV cache reused for every scenario's query, so the
baseline gets the same acceleration as our model.
"""

from __future__ import annotations

import pandas as pd
import torch


def user_texts(snapshots: pd.DataFrame, per_source: int) -> dict[str, str]:
    """user_id -> "bill: ...; search: ..." with the most recent ``per_source`` events per source."""
    out = {}
    for row in snapshots.itertuples(index=False):
        by_src: dict[str, list[str]] = {}
        for s, t in zip(row.event_source, row.event_text, strict=True):
            by_src.setdefault(s, []).append(t)
        out[row.user_id] = "\n".join(
            f"{s}: " + "; ".join(v[-per_source:]) for s, v in sorted(by_src.items())
        )
    return out


@torch.no_grad()
def llm_untrained_features(
    backbone: str, num_layers: int | None, snapshots: pd.DataFrame, queries: dict[str, str],
    per_source: int = 3, max_prefix_tokens: int = 256, batch: int = 16, bf16: str = "off",
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """scenario -> frame (index user_id) of last-token hidden states of [events text + query].

    Args:
        backbone: the backbone our model starts from ("default", "tiny" or a path).
        num_layers: the same layer cut the model uses, so the comparison isolates our training.
        snapshots: built snapshot rows.
        queries: scenario name -> query text.
        per_source: events per source written into the text.
        max_prefix_tokens: the events text is cut to this many tokens.
        batch: users per forward pass.
        bf16: autocast setting (auto/on/off), the same as our model's evaluation uses.
    """
    from qanchor.model.backbones import load_backbone
    from qanchor.model.precision import autocast, use_bf16

    model, tok = load_backbone(backbone, num_layers=num_layers)
    with autocast(use_bf16(bf16, model.device), model.device):
        return _features(model, tok, snapshots, queries, per_source, max_prefix_tokens, batch)


def _features(model, tok, snapshots, queries, per_source, max_prefix_tokens, batch):
    from transformers import DynamicCache

    texts = user_texts(snapshots, per_source)
    users = list(texts)
    feats: dict[str, list[torch.Tensor]] = {s: [] for s in queries}
    q_ids = {
        s: tok("\nQuery: " + q + "\nAnswer:", add_special_tokens=False)["input_ids"]
        for s, q in queries.items()
    }
    for k in range(0, len(users), batch):
        chunk = users[k : k + batch]
        ids = [
            tok("User events:\n" + texts[u], add_special_tokens=False)["input_ids"][
                :max_prefix_tokens
            ]
            for u in chunk
        ]
        n = max(len(x) for x in ids)
        pad = tok.pad_token_id
        inp = torch.tensor([[pad] * (n - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (n - len(x)) + [1] * len(x) for x in ids])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        model.model(
            input_ids=inp,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
        )
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        for s, qi in q_ids.items():
            q = torch.tensor([qi] * len(chunk))
            full = torch.cat([mask, torch.ones_like(q)], dim=1)
            qpos = (full.cumsum(-1) - 1)[:, n:]
            h = model.model(
                input_ids=q,
                attention_mask=full,
                position_ids=qpos,
                past_key_values=DynamicCache(kv),
                use_cache=True,
            )
            feats[s].append(h.last_hidden_state[:, -1].float())
    return {
        s: pd.DataFrame(torch.cat(v).numpy(), index=pd.Index(users, name="user_id"))
        for s, v in feats.items()
    }
