"""Pretraining losses: InfoNCE with in-batch negatives and a margin filter, and next-token loss.

The contrastive partition follows the paper and its public code: for anchor u_i and answer v_i,

    Z_i = e^{s(u_i,v_i)/t} + sum_j m_ij e^{s(u_i,v_j)/t} + sum_j m_ij e^{s(u_i,u_j)/t}
          + sum_j m_ij e^{s(v_i,v_j)/t}                        (j != i)

with cosine similarity s and temperature t. The margin filter m_ij = [s_neg <= s_pos_i + margin]
drops negatives that look *more* similar than the positive by more than the margin: in user data
those are mostly false negatives (two users with the same future, the same answer text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from qanchor.model.layout import Layout


def info_nce(
    u: torch.Tensor,
    v: torch.Tensor,
    temperature: float = 0.07,
    margin: float | None = 0.1,
    terms: tuple[str, ...] = ("uv", "uu", "vv"),
) -> torch.Tensor:
    """Contrastive loss of anchors ``u`` against answers ``v`` (rows are pairs).

    Args:
        u: [N, d] anchor embeddings (any scale; cosine similarity is used).
        v: [N, d] answer embeddings; ``v[i]`` is the positive of ``u[i]``.
        temperature: softmax temperature (paper code default 0.07).
        margin: margin of the false-negative filter; None disables the filter.
        terms: negative families in the partition: "uv" (u_i vs v_j), "uu", "vv".

    Returns:
        Mean negative log-likelihood of the positives.
    """
    n = u.shape[0]
    un, vn = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    pos = (un * vn).sum(-1)  # [n]
    not_self = ~torch.eye(n, dtype=torch.bool, device=u.device)
    sims = {"uv": un @ vn.T, "uu": un @ un.T, "vv": vn @ vn.T}
    logits = [pos.unsqueeze(1)]
    for term in terms:
        s = sims[term]
        keep = not_self if margin is None else not_self & (s <= pos.unsqueeze(1) + margin)
        # Dropped negatives get -inf logits: exp(-inf) = 0 in the partition, no NaN in grads.
        logits.append(s.masked_fill(~keep, float("-inf")))
    logits = torch.cat(logits, dim=1) / temperature
    return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()


def next_token_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module,
    vocab: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Mean next-token cross-entropy where ``labels`` != -100 (position t predicts t+1).

    ``hidden`` [B, L, d] holds every position; :func:`token_loss` takes the scored ones only.
    """
    scored, target = next_tokens(labels)
    return token_loss(hidden[scored], target, lm_head, vocab)


def next_tokens(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] bool: the positions whose next token is scored (``labels[:, t + 1]`` != -100),
    and those next tokens [N] in ``hidden[scored]`` order."""
    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:] != -100
    return scored, labels[:, 1:][scored[:, :-1]]


def token_loss(
    hidden: torch.Tensor, target: torch.Tensor, lm_head: torch.nn.Module,
    vocab: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Mean cross-entropy of states [N, d] against their next tokens [N].

    Only scored positions are projected to the vocabulary: the LM head over every position
    would cost more than the rest of the step on a small backbone with a 50k vocabulary.

    ``vocab`` (sorted token ids, :func:`answer_vocab`): the softmax runs over these tokens only,
    a target-vocabulary shortlist (Jean et al., 2015). Labels outside it are not scored.
    """
    if vocab is not None:
        at = torch.searchsorted(vocab, target).clamp(max=len(vocab) - 1)
        target = torch.where(vocab[at] == target, at, -100)
    if not bool((target != -100).any()):
        return hidden.sum() * 0.0  # keeps the graph connected when nothing is scored
    if vocab is None:
        logits = lm_head(hidden)
    else:
        bias = None if lm_head.bias is None else lm_head.bias[vocab]
        logits = F.linear(hidden, lm_head.weight[vocab], bias)
    return F.cross_entropy(logits.float(), target, ignore_index=-100)


def answer_vocab(layout: Layout, answers: Iterable[str]) -> torch.Tensor:
    """The sorted distinct token ids the next-token loss scores in ``answers`` (eos included)."""
    ids = {t for a in answers for t in layout.answer(a).labels if t != -100}
    return torch.tensor(sorted(ids), dtype=torch.long)


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x`` across ranks, keeping the gradient path to this rank's rows.

    Other ranks' rows are constants here, so each rank back-propagates only through its own rows.
    Every rank computes the same full-batch loss and DDP averages gradients over ranks, so the
    caller multiplies the loss by the world size to recover the single-process gradient exactly.

    Returns:
        (gathered [world*N, d], world size). Without a process group: (x, 1).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 1
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = x
    return torch.cat(parts, dim=0), len(parts)
