"""Loss terms on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qanchor.model.losses import answer_vocab, gather_with_grad, info_nce, next_token_loss


def manual_nce(u, v, t, keep_uv, keep_uu, keep_vv):
    """Per-row -log(e^pos / Z) written out term by term with explicit keep masks."""
    un, vn = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    total = 0.0
    n = len(u)
    for i in range(n):
        pos = math.exp(float(un[i] @ vn[i]) / t)
        z = pos
        for j in range(n):
            if j == i:
                continue
            z += keep_uv[i][j] * math.exp(float(un[i] @ vn[j]) / t)
            z += keep_uu[i][j] * math.exp(float(un[i] @ un[j]) / t)
            z += keep_vv[i][j] * math.exp(float(vn[i] @ vn[j]) / t)
        total += -math.log(pos / z)
    return total / n


def test_info_nce_matches_the_written_out_partition() -> None:
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    ones = [[1] * 5 for _ in range(5)]
    got = info_nce(u, v, temperature=0.5, margin=None)
    assert got.item() == pytest.approx(manual_nce(u, v, 0.5, ones, ones, ones), rel=1e-5)


def test_terms_switch_selects_negative_families() -> None:
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    ones, zeros = [[1] * 4 for _ in range(4)], [[0] * 4 for _ in range(4)]
    got = info_nce(u, v, temperature=0.2, margin=None, terms=("uv",))
    assert got.item() == pytest.approx(manual_nce(u, v, 0.2, ones, zeros, zeros), rel=1e-5)


def test_margin_filter_drops_exactly_the_false_negatives() -> None:
    # Row 0's positive has similarity 0.6; u1 and v1 are near-copies of u0 (a "same user"
    # false negative, similarity ~1.0 > 0.6 + 0.1) and must be dropped for row 0 only.
    u = torch.tensor([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 0.0, 1.0]])
    v = torch.tensor([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0], [0.0, 0.3, 1.0]])
    t, m = 0.1, 0.1
    un, vn = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    pos = (un * vn).sum(-1)
    keep = {
        name: [
            [int(j != i and float(s[i, j]) <= float(pos[i]) + m) for j in range(3)]
            for i in range(3)
        ]
        for name, s in (("uv", un @ vn.T), ("uu", un @ un.T), ("vv", vn @ vn.T))
    }
    assert keep["uv"][0][1] == 0 and keep["uu"][0][1] == 0  # the false negatives of row 0
    assert keep["uv"][0][2] == 1 and keep["uu"][2][0] == 1  # true negatives stay
    expected = manual_nce(u, v, t, keep["uv"], keep["uu"], keep["vv"])
    assert info_nce(u, v, t, margin=m).item() == pytest.approx(expected, rel=1e-5)
    assert info_nce(u, v, t, margin=None).item() > info_nce(u, v, t, margin=m).item()


def test_info_nce_is_low_for_aligned_and_high_for_shuffled_pairs() -> None:
    x = F.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(2)), dim=-1)
    aligned = info_nce(x, x, 0.07, margin=None, terms=("uv",))
    shuffled = info_nce(x, x.roll(1, 0), 0.07, margin=None, terms=("uv",))
    assert aligned.item() < 0.1 < shuffled.item()


def test_gradients_flow_and_stay_finite_when_all_negatives_are_filtered() -> None:
    u = torch.ones(3, 4, requires_grad=True)
    v = torch.ones(3, 4, requires_grad=True)  # every negative equals the positive
    loss = info_nce(u, v, 0.07, margin=-0.5)  # and the margin filters all of them
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(u.grad).all() and torch.isfinite(v.grad).all()


def test_next_token_loss_equals_full_cross_entropy() -> None:
    g = torch.Generator().manual_seed(3)
    head = torch.nn.Linear(8, 11, bias=False)
    hidden = torch.randn(2, 5, 8, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 7, 1, -100, -100]])
    logits = head(hidden)
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert next_token_loss(hidden, labels, head).item() == pytest.approx(expected.item(), rel=1e-6)
    nothing = torch.full_like(labels, -100)
    assert next_token_loss(hidden, nothing, head).item() == 0.0


def test_next_token_loss_over_a_shortlist_is_the_softmax_over_its_tokens() -> None:
    g = torch.Generator().manual_seed(4)
    head = torch.nn.Linear(8, 11, bias=True)
    hidden = torch.randn(2, 5, 8, generator=g)
    labels = torch.tensor([[-100, -100, 3, 9, 5], [-100, 9, 2, -100, -100]])
    vocab = torch.tensor([3, 5, 9])  # 2 is outside: that position is not scored
    logits = head(hidden)[:, :-1][:, :, vocab]
    local = torch.tensor([[-100, 0, 2, 1], [2, -100, -100, -100]])
    expected = F.cross_entropy(logits.reshape(-1, 3), local.reshape(-1), ignore_index=-100)
    got = next_token_loss(hidden, labels, head, vocab)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() < next_token_loss(hidden, labels, head).item()  # fewer tokens compete
    outside = torch.tensor([[-100, 2, 2, -100, -100]] * 2)
    assert next_token_loss(hidden, outside, head, vocab).item() == 0.0


def test_answer_vocab_is_every_scored_answer_token_and_eos() -> None:
    from qanchor.model.layout import Layout
    from qanchor.model.tiny import byte_tokenizer

    tok = byte_tokenizer()
    lay = Layout(tok, ["bill"], False, False, 48, 64)
    vocab = answer_vocab(lay, ["spends on groceries", "groceries again"])
    # Read off the tokenizer, not the layout: the answers' own tokens and eos, not "\nAnswer:".
    words = tok(" spends on groceries groceries again", add_special_tokens=False)["input_ids"]
    assert vocab.tolist() == sorted({*words, lay.eos})


def test_gather_is_identity_without_a_process_group() -> None:
    x = torch.randn(3, 2)
    out, world = gather_with_grad(x)
    assert out is x and world == 1
