"""Explain a user in words for a query: greedy decoding with the next-token head.

    qanchor explain --model runs/model --data data/built --user u000042 --query cash_loan_default

The paper's interpretability: the anchor tower was also trained to generate the answer, so the
same cached prefix that yields the embedding can be decoded into a short description.
"""

from __future__ import annotations

import torch

from qanchor.infer.anchor import AnchorEngine, Suffix
from qanchor.infer.users import UserInputs


@torch.no_grad()
def explain(
    engine: AnchorEngine, users: UserInputs, user_id: str, query: str, max_new_tokens: int = 48
) -> str:
    """A short text about one of ``users`` for a query, decoded greedily by the next-token head.

    Reuses the user's cached prefix: the same states that produce the embedding.
    """
    from transformers import DynamicCache

    model, device = engine.model, engine.device
    lm = model.causal_lm
    entry = engine.prefixes(users, users.rows([user_id]))[0]
    sfx = engine.suffix_embeds(Suffix(query)).embeds
    marker = lm.get_input_embeddings()(torch.tensor(model.layout.answer_ids, device=device))
    cache = DynamicCache([(k[None], v[None]) for k, v in entry.kv])
    x, n, out = torch.cat([sfx, marker])[None], entry.length, []
    for _ in range(max_new_tokens):
        pos = torch.arange(n, n + x.shape[1], device=device)[None]
        mask = torch.ones(1, n + x.shape[1], dtype=torch.long, device=device)
        h = lm.model(
            inputs_embeds=x,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
        )
        token = int(lm.get_output_embeddings()(h.last_hidden_state[:, -1]).argmax(-1))
        if token == model.layout.eos:
            break
        out.append(token)
        n += x.shape[1]
        x = lm.get_input_embeddings()(torch.tensor([[token]], device=device))
    return model.tokenizer.decode(out, skip_special_tokens=True).strip()
