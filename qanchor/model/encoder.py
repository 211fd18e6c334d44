"""The coarse-to-fine user encoder: event tokens, modal tokens and the user token.

Fine: each event's text vector (from the sentence encoder) goes through its source's adapter
(LayerNorm -> Linear -> GELU -> Linear) to the LLM width. Coarse: per-source pools of the event
vectors go through one shared modal adapter (one modal token per source), and the mean of the
modal vectors goes through the user adapter (the user token). The coarse pools read the whole
history when the batch carries it (``Batch.bag_*``: distinct texts with counts), else the same
capped recent events as the event tokens. Dense sources (the tabular profile, the
bag-of-events vector) are more sources: a Linear gives each its event token and another Linear
its contribution to the coarse means.
"""

from __future__ import annotations

import torch
from torch import nn


class Adapter(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear, as in the paper's LLMAdapter."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_in, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Linear(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x))


class UserEncoder(nn.Module):
    """Maps event vectors (+ dense per-user vectors) of a batch of users to LLM-width tokens."""

    def __init__(
        self, n_sources: int, d_enc: int, d_llm: int, profile_dim: int, token_rms: float = 1.0,
        bag_dim: int = 0, coarse_pool: str = "mean",
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_sources, self.d_enc, self.profile_dim = n_sources, d_enc, profile_dim
        self.bag_dim, self.coarse_pool = bag_dim, coarse_pool
        # Keyed by index, not name: source names are data, and ModuleDict keys cannot hold dots.
        self.source_adapters = nn.ModuleList(Adapter(d_enc, d_llm) for _ in range(n_sources))
        self.modal_adapter = Adapter(d_enc, d_llm)
        self.user_adapter = Adapter(d_enc, d_llm)
        if coarse_pool == "attention":
            # One learned query per source scores its texts; log(count) keeps frequency in.
            self.pool_query = nn.Parameter(torch.zeros(n_sources, d_enc))
        elif coarse_pool != "mean":
            raise ValueError(f"coarse_pool must be 'mean' or 'attention', not {coarse_pool!r}")
        # Dense sources: a Linear to their event token, another to their part of the means.
        if profile_dim:
            self.tab_token = nn.Linear(profile_dim, d_llm)
            self.tab_pool = nn.Linear(profile_dim, d_enc)
        if bag_dim:
            self.bag_token = nn.Linear(bag_dim, d_llm)
            self.bag_pool = nn.Linear(bag_dim, d_enc)
        # Every token we insert is RMS-normalised to the scale of the backbone's own token
        # embeddings: a pretrained LLM expects inputs of that scale, and tokens 10x larger
        # than the text around them would swamp the query and destabilise early training.
        self.out_norm = nn.RMSNorm(d_llm, eps=1e-6)
        with torch.no_grad():
            self.out_norm.weight.fill_(token_rms)

    @property
    def n_modal(self) -> int:
        """Modal tokens per user: one per source and one per dense source."""
        return self.n_sources + int(bool(self.profile_dim)) + int(bool(self.bag_dim))

    def forward(
        self,
        ev_vecs: torch.Tensor,
        ev_source: torch.Tensor,
        ev_example: torch.Tensor,
        n_users: int,
        profile: torch.Tensor | None = None,
        history: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        bag_vec: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Encode a batch.

        Args:
            ev_vecs: [T, d_enc] event text vectors of all users' events.
            ev_source: [T] source index of each event.
            ev_example: [T] user (row) index of each event.
            n_users: B, the number of users in the batch.
            profile: [B, profile_dim] features, or None without a tabular source.
            history: the whole history the coarse tokens pool over, as (vectors [N, d_enc],
                source [N], user row [N], event count [N]) of distinct texts; None pools the
                events above.
            bag_vec: [B, bag_dim] bag-of-events vectors, or None without that channel.

        Returns:
            (event tokens [T, d_llm] in input order, modal tokens [B, n_modal, d_llm],
            user token [B, d_llm], dense event tokens [B, d_llm] each: profile, then bag).
        """
        ev_tokens = ev_vecs.new_zeros(ev_vecs.shape[0], self.modal_adapter.mlp[-1].out_features)
        for s, adapter in enumerate(self.source_adapters):
            idx = (ev_source == s).nonzero(as_tuple=True)[0]
            if idx.numel():
                ev_tokens = ev_tokens.index_copy(0, idx, adapter(ev_vecs[idx]).to(ev_tokens.dtype))
        if history is None:
            history = (ev_vecs, ev_source, ev_example, ev_vecs.new_ones(ev_vecs.shape[0]))
        means, present = self._source_means(*history, n_users)
        dense = []
        for token, pool, x in self._dense_sources(profile, bag_vec):
            x = x.to(means.dtype)
            dense.append(token(x))
            # Unit length, like the sentence encoder's vectors: a raw Linear of ~100
            # standardised features came out ~16x longer than a mean of unit event vectors
            # and drowned the events' content in the user token's average (linear-probe AUC
            # of the user token after small pretraining: 0.726 without, 0.749 with it).
            pooled = torch.nn.functional.normalize(pool(x), dim=-1)
            means = torch.cat([means, pooled.unsqueeze(1)], dim=1)
            present = torch.cat([present, present.new_ones(n_users, 1)], dim=1)
        modal = self.modal_adapter(means)
        # The user token pools only the sources the user actually has.
        w = present.to(means.dtype).unsqueeze(-1)
        user = self.user_adapter((means * w).sum(1) / w.sum(1).clamp(min=1.0))
        norm = self.out_norm
        return norm(ev_tokens), norm(modal), norm(user), [norm(t) for t in dense]

    def _dense_sources(self, profile: torch.Tensor | None, bag_vec: torch.Tensor | None):
        """(token Linear, pool Linear, vectors) of each dense source the model has, in order."""
        out = []
        for dim, name, x in ((self.profile_dim, "tab", profile), (self.bag_dim, "bag", bag_vec)):
            if dim:
                if x is None:
                    raise ValueError(f"this model has a '{name}' source: pass its vectors")
                out.append((getattr(self, f"{name}_token"), getattr(self, f"{name}_pool"), x))
        return out

    def _source_means(
        self, vecs: torch.Tensor, source: torch.Tensor, example: torch.Tensor,
        count: torch.Tensor, n_users: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """[B, S, d_enc] pooled vector per user and source (0 if none), and presence [B, S].

        ``mean`` weighs each distinct text by its event count (the mean over events);
        ``attention`` by softmax(query_s . v + log count) within each (user, source).
        """
        flat = example * self.n_sources + source
        groups = n_users * self.n_sources
        w = count.to(vecs.dtype)
        if self.coarse_pool == "attention" and vecs.shape[0]:
            score = (vecs * self.pool_query[source].to(vecs.dtype)).sum(-1) + torch.log(w)
            top = score.new_full((groups,), float("-inf")).scatter_reduce(
                0, flat, score, reduce="amax", include_self=True
            )
            w = torch.exp(score - top[flat])
        sums = vecs.new_zeros(groups, self.d_enc).index_add(0, flat, vecs * w.unsqueeze(1))
        total = w.new_zeros(groups).index_add(0, flat, w)
        means = sums / total.clamp(min=1e-12).unsqueeze(1)
        present = torch.bincount(flat, minlength=groups) > 0
        return means.view(n_users, self.n_sources, -1), present.view(n_users, self.n_sources)
