"""The Q-Anchor network: user encoder + LoRA backbone (shared by both towers) + projection head.

Anchor tower: prefix (user/modal/event tokens) + query suffix -> hidden state at <USER_EMB> ->
head -> L2-normalised u. Semantic tower: answer text -> last-token hidden state -> same head -> v.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qanchor.model import layout as L
from qanchor.model.config import ModelConfig
from qanchor.model.encoder import UserEncoder


class Head(nn.Module):
    """Projection head shared by both towers (paper: 896 -> 512 -> 128), L2-normalised output.

    Each tower's input is first standardised with fixed per-dimension statistics measured once
    on training data (:meth:`calibrate`). LLM hidden states are highly anisotropic (different
    users' states have cosine ~0.99 in SmolLM2), and without this the in-batch contrastive loss
    collapses every embedding onto one point in a short CPU run before it learns to separate.
    The statistics are buffers: saved with the model and identical in training and serving.
    """

    TOWERS = ("anchor", "semantic")

    def __init__(
        self, d_in: int, hidden: int, d_out: int, user_skip: bool = False, n_summary: int = 1
    ) -> None:
        super().__init__()
        self.n_summary = n_summary
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
        # The user shortcut (ModelConfig.user_skip) reads the user token twice: before the ReLU,
        # so the query state can gate which parts of the user summary pass, and linearly into
        # the output, which keeps what the short contrastive run has not learnt to ask for
        # (through the ReLU layer alone the embedding kept less than the token held: probe
        # AUC 0.712 vs 0.749, small preset). The LayerNorm puts the token, scaled like the
        # backbone's small input embeddings, on the scale of the standardised state.
        # With a bag-of-events channel the shortcut reads its token too (``n_summary`` = 2):
        # averaged into the user token, the bag lost part of what it held (linear-probe AUC on
        # MovieLens-100k: user token 0.766, user token beside the bag vector 0.776).
        self.user_norm = nn.LayerNorm(d_in, elementwise_affine=False) if user_skip else None
        width = d_in * n_summary
        self.user_in = nn.Linear(width, hidden, bias=False) if user_skip else None
        self.user_out = nn.Linear(width, d_out, bias=False) if user_skip else None
        for tower in self.TOWERS:
            self.register_buffer(f"{tower}_shift", torch.zeros(d_in))
            self.register_buffer(f"{tower}_scale", torch.ones(d_in))

    @torch.no_grad()
    def calibrate(self, tower: str, x: torch.Tensor) -> None:
        """Set a tower's shift/scale from a sample of its hidden states [N, d_in]."""
        x = x.float()
        std = x.std(0)
        getattr(self, f"{tower}_shift").copy_(x.mean(0))
        getattr(self, f"{tower}_scale").copy_(std.clamp(min=1e-2 * float(std.mean()) + 1e-6))

    def forward(
        self, x: torch.Tensor, tower: str, user: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed hidden states ``x`` [N, d_in]; ``user`` [N, n_summary * d_in] (the summary
        tokens side by side) feeds the user shortcut (ignored by a head built without it)."""
        x = (x - getattr(self, f"{tower}_shift")) / getattr(self, f"{tower}_scale")
        z = self.net[0](x.to(self.net[0].weight.dtype))
        if self.user_norm is None or user is None:
            return F.normalize(self.net[2](self.net[1](z)).float(), dim=-1)
        n = user.shape[0]
        user = self.user_norm(user.to(z.dtype).view(n, self.n_summary, -1)).view(n, -1)
        out = self.net[2](self.net[1](z + self.user_in(user))) + self.user_out(user)
        return F.normalize(out.float(), dim=-1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip padding, so left- and right-padded rows see the same positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class QAnchorModel(nn.Module):
    """Both towers over one backbone. ``backbone`` is a (peft-wrapped) causal LM."""

    def __init__(
        self, cfg: ModelConfig, backbone: nn.Module, tokenizer, text_encoder: nn.Module
    ) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.backbone, self.text_encoder = backbone, text_encoder
        lm = self.causal_lm
        d_llm = lm.config.hidden_size
        token_rms = float(lm.get_input_embeddings().weight.detach().float().pow(2).mean().sqrt())
        self.encoder = UserEncoder(
            len(cfg.sources), text_encoder.dim, d_llm, cfg.profile_dim, token_rms,
            bag_dim=cfg.bag_dim, coarse_pool=cfg.coarse_pool,
        )  # fmt: skip
        # The fitted bag-of-events vectorizer (qanchor.data.bag), saved with the model.
        self.bag_vectorizer = None
        self.emb_token = nn.Parameter(torch.randn(d_llm) * token_rms)
        self.head = Head(d_llm, cfg.head_hidden, cfg.emb_dim, cfg.user_skip, self.n_summary)
        self.layout = L.Layout(
            tokenizer,
            cfg.sources,
            cfg.profile_dim > 0,
            cfg.user_tokens,
            cfg.max_query_tokens,
            cfg.max_answer_tokens,
            has_bag=cfg.bag_dim > 0,
        )

    @property
    def n_summary(self) -> int:
        """Tokens the head's shortcut reads: the user token, and the bag token if any."""
        return 2 if self.cfg.bag_dim else 1

    @property
    def causal_lm(self) -> nn.Module:
        """The underlying causal LM (LoRA layers, if any, are injected into it in place)."""
        get = getattr(self.backbone, "get_base_model", None)
        return get() if get is not None else self.backbone

    # --- embeddings -----------------------------------------------------------------------
    def input_embeds(
        self, batch: L.Batch, ev_vecs: torch.Tensor, bag_vecs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token embeddings with encoder outputs and <USER_EMB> written in.

        Soft prompts are written by the suffix path (``qanchor.infer.engine``), the only place
        that runs a query with a prompt.

        Args:
            batch: the padded batch.
            ev_vecs: [T, d_enc] text vectors of ``batch.ev_text``.
            bag_vecs: [N, d_enc] text vectors of ``batch.bag_text`` (the whole history the
                coarse tokens pool over), or None: they pool the events.
        """
        return self.embeds_and_user(batch, ev_vecs, bag_vecs)[0]

    def embeds_and_user(
        self, batch: L.Batch, ev_vecs: torch.Tensor, bag_vecs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`input_embeds` and each row's summary for the head's shortcut: the user token
        and, with a bag channel, the bag token, side by side [B, n_summary * d_llm] (zeros
        without a prefix)."""
        emb = self.causal_lm.get_input_embeddings()(batch.input_ids)
        kinds, n_users = batch.kinds, batch.input_ids.shape[0]
        user = emb.new_zeros(n_users, emb.shape[-1] * self.n_summary)
        needs_prefix = bool((kinds == L.EVENT).any() or (kinds == L.USER).any())
        if needs_prefix:
            history = None
            if self.cfg.whole_history:
                history = (bag_vecs, batch.bag_source, batch.bag_example, batch.bag_weight)
            ev_tok, modal, user, dense = self.encoder(
                ev_vecs, batch.ev_source, batch.ev_example, n_users, batch.profile, history,
                batch.bag_vec,
            )  # fmt: skip
            if self.cfg.user_tokens:
                emb = self._put(emb, kinds == L.USER, user)
                emb = self._put(emb, kinds == L.MODAL, modal.reshape(-1, modal.shape[-1]))
            emb = self._put(
                emb, kinds == L.EVENT, self._event_slots(ev_tok, dense, batch.ev_example, n_users)
            )
            if self.cfg.bag_dim:
                user = torch.cat([user, dense[-1]], dim=-1)  # the bag token is the last dense one
        emb = self._put(
            emb, kinds == L.USER_EMB, self.emb_token.expand(int((kinds == L.USER_EMB).sum()), -1)
        )
        return emb, user

    @staticmethod
    def _put(emb: torch.Tensor, mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if values.shape[0] != int(mask.sum()):
            raise ValueError(f"layout mismatch: {int(mask.sum())} slots, {values.shape[0]} values")
        return emb.masked_scatter(mask.unsqueeze(-1), values.to(emb.dtype))

    @staticmethod
    def _event_slots(
        ev_tok: torch.Tensor, dense: list[torch.Tensor], ev_example: torch.Tensor, n_users: int
    ) -> torch.Tensor:
        """Event tokens in row-major slot order: each row's events, then its dense tokens."""
        if not dense:
            return ev_tok
        k = len(dense)
        counts = torch.bincount(ev_example, minlength=n_users)
        row_start = torch.cumsum(counts + k, 0) - (counts + k)
        rank_in_row = (
            torch.arange(len(ev_example), device=ev_tok.device)
            - (torch.cumsum(counts, 0) - counts)[ev_example]
        )
        out = ev_tok.new_zeros(len(ev_example) + k * n_users, ev_tok.shape[-1])
        out = out.index_copy(0, row_start[ev_example] + rank_in_row, ev_tok)
        for j, tok in enumerate(dense):
            out = out.index_copy(0, row_start + counts + j, tok.to(out.dtype))
        return out

    def hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor, **kw) -> torch.Tensor:
        """Last-layer hidden states of the backbone for given input embeddings."""
        out = self.causal_lm.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            **kw,
        )
        return out.last_hidden_state

    def hidden_at(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """``hidden(...)[keep]`` [N, d], the last layer computed at ``keep`` only
        (:mod:`qanchor.model.decoder`)."""
        from qanchor.model.decoder import hidden_at

        pos = position_ids(attention_mask)
        return hidden_at(self.causal_lm.model, embeds, attention_mask, pos, keep)

    # --- towers ---------------------------------------------------------------------------
    def anchor_hidden(
        self, batch: L.Batch, ev_vecs: torch.Tensor, bag_vecs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Backbone hidden state at <USER_EMB>, before the head [B, d_llm]."""
        emb = self.input_embeds(batch, ev_vecs, bag_vecs)
        return self.hidden_at(emb, batch.attention_mask, batch.kinds == L.USER_EMB)

    def anchor(
        self, batch: L.Batch, ev_vecs: torch.Tensor, bag_vecs: torch.Tensor | None = None,
        lm_vocab: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """u (normalised) at <USER_EMB>, and the next-token loss if the batch has labels
        (over ``lm_vocab`` only when given: :func:`qanchor.model.losses.next_token_loss`)."""
        from qanchor.model.losses import next_tokens, token_loss

        emb, user = self.embeds_and_user(batch, ev_vecs, bag_vecs)
        at_user = batch.kinds == L.USER_EMB
        scored, target = torch.zeros_like(at_user), None
        if batch.labels is not None:
            scored, target = next_tokens(batch.labels)
        keep = at_user | scored
        h = self.hidden_at(emb, batch.attention_mask, keep)
        # One <USER_EMB> per row, in row order (the layout puts exactly one in each suffix).
        u = self.head(h[at_user[keep]], "anchor", user)
        lm_loss = None
        if batch.labels is not None:
            head = self.causal_lm.get_output_embeddings()
            lm_loss = token_loss(h[scored[keep]], target, head, lm_vocab)
        return u, lm_loss

    def semantic(
        self, answer_ids: torch.Tensor, attention_mask: torch.Tensor, raw: bool = False
    ) -> torch.Tensor:
        """v (normalised): the answer's last real token through the backbone and the head.

        With ``raw`` the pooled hidden state is returned instead (for head calibration).
        """
        from qanchor.model.decoder import one_per_row

        emb = self.causal_lm.get_input_embeddings()(answer_ids)
        last = attention_mask.long().sum(1) - 1
        pooled = self.hidden_at(emb, attention_mask, one_per_row(attention_mask, last))
        return pooled if raw else self.head(pooled, "semantic")

    def event_vectors(self, texts: list[str]) -> torch.Tensor:
        """Encode event texts with the (possibly LoRA-tuned) text encoder, with gradients."""
        from qanchor.model.vectors import encoder_texts

        texts = encoder_texts(texts, self.cfg.text_numbers)
        toks = self.text_encoder.tokenize(texts, self.cfg.encoder_max_length)
        dev = self.emb_token.device
        return self.text_encoder(toks["input_ids"].to(dev), toks["attention_mask"].to(dev))
