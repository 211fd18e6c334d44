"""The ``llm_untrained`` baseline: the backbone before our pretraining reads the events as text.

Per user, the most recent events per source are written out as plain text; the query follows,
and the last token's hidden state is the embedding (as a generic LLM embedder would do). The text
prefix is encoded once per user and its KV cache reused for every scenario's query, by the same
prefix/suffix engine as our model's (:class:`qanchor.infer.kv.KVEngine`), so the baseline gets
the same acceleration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch

if TYPE_CHECKING:
    from qanchor.infer.kv import KVEngine


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
        max_prefix_tokens: the events text is cut to this many tokens (evaluation passes the
            model's own longest prefix: both read the same number of prefix positions).
        batch: users per forward pass.
        bf16: autocast setting (auto/on/off), the same as our model's evaluation uses.
    """
    from qanchor.infer.kv import KVEngine
    from qanchor.infer.threads import split_rows, workers
    from qanchor.model.backbones import load_backbone
    from qanchor.model.precision import use_bf16
    from qanchor.progress import bar as progress

    model, tok = load_backbone(backbone, num_layers=num_layers)
    engine = KVEngine(model.model, use_bf16(bf16, model.device), model.device)
    texts = user_texts(snapshots, per_source)
    q_ids = {
        s: tok("\nQuery: " + q + "\nAnswer:", add_special_tokens=False)["input_ids"]
        for s, q in queries.items()
    }
    embed, pad = model.get_input_embeddings(), tok.pad_token_id
    users = list(texts)
    ids = {u: tok("User events:\n" + texts[u], add_special_tokens=False)["input_ids"]
           [:max_prefix_tokens] for u in users}  # fmt: skip
    # Batches of similar lengths: a batch is padded to its longest text, and at random order
    # most rows carried padding (positions follow the mask, so the states do not change).
    order = sorted(users, key=lambda u: len(ids[u]))
    feats = {s: [] for s in queries}

    def run(part: list[list[int]]) -> dict[str, torch.Tensor]:
        return _last_states(engine, embed, part, q_ids, pad)

    # One batch per core side by side (qanchor.infer.threads).
    step = batch * workers(model.device, len(order), batch)
    with progress(total=len(users), desc="embed llm_untrained", unit="user") as bar:
        for k in range(0, len(order), step):
            chunk = [ids[u] for u in order[k : k + step]]
            for got in split_rows(run, chunk, model.device, min_rows=batch):
                for s, h in got.items():
                    feats[s].append(h)
            bar.update(len(chunk))
    index = pd.Index(order, name="user_id")
    return {
        s: pd.DataFrame(torch.cat(v).cpu().numpy(), index=index).reindex(users)
        for s, v in feats.items()
    }


def _last_states(
    engine: KVEngine, embed: torch.nn.Module, ids: list[list[int]], q_ids: dict[str, list[int]],
    pad: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """scenario -> [len(ids), d] last-token states of each query after each user's text.

    The texts' prefix is run once (left-padded) and its states serve every query's suffix.
    """
    n, dev = max(len(x) for x in ids), engine.device
    inp = torch.tensor([[pad] * (n - len(x)) + x for x in ids], device=dev)
    mask = torch.tensor([[0] * (n - len(x)) + [1] * len(x) for x in ids], device=dev)
    prefix = engine.prefix(embed(inp), mask)
    out = {}
    for s, qi in q_ids.items():
        q = torch.tensor([qi] * len(ids), device=dev)
        last = torch.full((len(ids),), len(qi) - 1, device=dev)
        out[s] = engine.suffix_at(prefix, embed(q), torch.ones_like(q), last).float()
    return out
