"""The network on a tiny random backbone: layout, placement of encoder outputs, towers, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qanchor.config import resolve
from qanchor.data.bag import BagVectorizer
from qanchor.model import layout as L
from qanchor.model.artifact import build_model, load_model, save_model
from qanchor.model.config import PretrainConfig
from qanchor.model.profile import ProfileFeaturizer

SOURCES = ["app", "bill", "search"]


@pytest.fixture(scope="module")
def model():
    cfg = resolve(PretrainConfig, "tiny").model_config(SOURCES, profile_dim=3)
    return build_model(cfg).eval()


BAG_DIM = resolve(PretrainConfig, "tiny").model.bag_dim


def bag(sources: list[int], texts: list[int], counts: list[float]):
    return (np.array(sources), np.array(texts), np.array(counts, np.float32))


def users() -> list[L.UserInput]:
    """Two users: recent events, profile, whole-history bag (older texts 6, 7) and bag vector."""
    return [
        L.UserInput([(0, [0, 1]), (2, [2])], np.array([1.0, 0.0, 2.0], np.float32),
                    bag([0, 0, 0, 2], [0, 1, 6, 2], [1, 1, 3, 1]), np.full(BAG_DIM, 0.5, np.float32)),
        L.UserInput([(1, [3, 4, 5])], np.array([0.0, 1.0, 0.0], np.float32),
                    bag([1, 1, 1, 1], [3, 4, 5, 7], [2, 1, 1, 4]), np.full(BAG_DIM, -1.0, np.float32)),
    ]  # fmt: skip


def vectors(b: L.Batch, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random vectors for the 8 text ids, looked up for the batch's events and bag."""
    table = torch.randn(8, dim, generator=torch.Generator().manual_seed(seed))
    return table[b.ev_text], table[b.bag_text]


def make_batch(model, queries=("Will this user pay?", "Churn?"), answers=None):
    lay = model.layout
    rows = [[lay.prefix(u), lay.suffix(q)] for u, q in zip(users(), queries, strict=True)]
    for row, a in zip(rows, answers or [], strict=False):
        row.append(lay.answer(a))
    return L.collate(rows, users(), lay.pad)


def test_prefix_layout_has_user_modal_event_slots(model) -> None:
    seg = model.layout.prefix(users()[0])
    kinds = seg.kinds
    assert kinds.count(L.USER) == 1
    assert kinds.count(L.MODAL) == len(SOURCES) + 2  # + profile + bag
    assert kinds.count(L.EVENT) == 3 + 2  # 3 events + the profile and bag tokens
    assert seg.ev_text == [0, 1, 2] and seg.ev_source == [0, 0, 2]
    suffix = model.layout.suffix("q?", n_prompt=6)
    assert suffix.kinds[-7:] == [L.PROMPT] * 6 + [L.USER_EMB]


def test_user_tokens_switch_removes_user_and_modal_slots() -> None:
    cfg = resolve(PretrainConfig, "tiny", overrides={"user_tokens": False}).model_config(SOURCES, 0)
    m = build_model(cfg)
    kinds = m.layout.prefix(L.UserInput([(0, [0])])).kinds
    # The bag-of-events token is a dense source like any event, so it stays.
    assert L.USER not in kinds and L.MODAL not in kinds and kinds.count(L.EVENT) == 1 + 1


def test_collate_pads_right_or_left_and_masks(model) -> None:
    b = make_batch(model)
    lens = b.attention_mask.sum(1)
    assert b.input_ids.shape == b.kinds.shape == b.attention_mask.shape
    assert (b.attention_mask[0, : lens[0]] == 1).all() and (
        b.attention_mask[1, lens[1] :] == 0
    ).all()
    assert b.ev_example.tolist() == [0, 0, 0, 1, 1, 1]
    lay = model.layout
    left = L.collate([[lay.prefix(u)] for u in users()], users(), lay.pad, left=True)
    assert b.bag_example.tolist() == [0] * 4 + [1] * 4 and b.bag_vec.shape == (2, BAG_DIM)
    assert (
        left.attention_mask[:, -1] == 1
    ).all()  # left padding: every prefix ends at the last column


def test_encoder_outputs_land_in_their_slots(model) -> None:
    b = make_batch(model)
    ev, hist = vectors(b, model.text_encoder.dim)
    emb = model.input_embeds(b, ev, hist)
    history = (hist, b.bag_source, b.bag_example, b.bag_weight)
    ev_tok, modal, user, (tab, bagtok) = model.encoder(
        ev, b.ev_source, b.ev_example, 2, b.profile, history, b.bag_vec
    )
    slots = emb[b.kinds == L.EVENT]
    # each row: its 3 events, then its profile token, then its bag token
    torch.testing.assert_close(slots[:3], ev_tok[:3])
    torch.testing.assert_close(slots[3], tab[0])
    torch.testing.assert_close(slots[4], bagtok[0])
    torch.testing.assert_close(slots[5:8], ev_tok[3:])
    torch.testing.assert_close(slots[8], tab[1])
    torch.testing.assert_close(slots[9], bagtok[1])
    torch.testing.assert_close(emb[b.kinds == L.USER], user)
    torch.testing.assert_close(emb[b.kinds == L.MODAL].view(2, -1, emb.shape[-1]), modal)
    torch.testing.assert_close(emb[b.kinds == L.USER_EMB], model.emb_token.expand(2, -1))


def test_towers_give_normalised_embeddings_of_the_configured_size(model) -> None:
    b = make_batch(model, answers=["pays bills on time", "stops using the app"])
    u, lm = model.anchor(b, *vectors(b, model.text_encoder.dim))
    assert u.shape == (2, model.cfg.emb_dim) and lm is not None and lm.item() > 0
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(2))
    ids = L.pad(
        [model.layout.semantic("a b"), model.layout.semantic("a much longer answer")],
        model.layout.pad,
    )
    mask = (ids != -1).long()
    mask[0, len(model.layout.semantic("a b")) :] = 0
    v = model.semantic(ids, mask)
    alone = model.semantic(ids[:1, : int(mask[0].sum())], mask[:1, : int(mask[0].sum())])
    torch.testing.assert_close(v[0], alone[0], atol=1e-5, rtol=1e-5)  # padding does not leak


def test_towers_equal_the_full_pass_read_at_their_positions(model) -> None:
    """The towers compute the last layer only where they read it (qanchor.model.decoder):
    <USER_EMB> and the scored answer tokens, the answer's last token."""
    from qanchor.model.losses import answer_vocab, next_token_loss

    answers = ["pays bills on time", "stops using the app"]
    b = make_batch(model, answers=answers)
    ev = vectors(b, model.text_encoder.dim)
    vocab = answer_vocab(model.layout, answers)
    emb, user = model.embeds_and_user(b, *ev)
    h = model.hidden(emb, b.attention_mask)
    head = model.causal_lm.get_output_embeddings()
    for v in (None, vocab):
        u, lm = model.anchor(b, *ev, lm_vocab=v)
        torch.testing.assert_close(u, model.head(h[b.kinds == L.USER_EMB], "anchor", user))
        torch.testing.assert_close(lm, next_token_loss(h, b.labels, head, v))
    ids = L.pad([model.layout.semantic(a) for a in answers], model.layout.pad)
    mask = L.pad([[1] * len(model.layout.semantic(a)) for a in answers], 0)
    last = mask.sum(1) - 1
    pooled = model.hidden(model.causal_lm.get_input_embeddings()(ids), mask)[torch.arange(2), last]
    torch.testing.assert_close(model.semantic(ids, mask, raw=True), pooled)


def test_the_embedding_does_not_see_the_answer(model) -> None:
    with_a = make_batch(model, answers=["first answer", "second"])
    other = make_batch(model, answers=["something else entirely", "x"])
    ev = vectors(with_a, model.text_encoder.dim)
    u1, _ = model.anchor(with_a, *ev)
    u2, _ = model.anchor(other, *ev)
    torch.testing.assert_close(u1, u2)  # causal attention: <USER_EMB> precedes the answer


def test_save_and_load_round_trip(model, tmp_path: Path) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)  # make the trainable state differ from a fresh build
    fz = ProfileFeaturizer(numeric={"a": (0.0, 1.0)}, categorical={})
    model.bag_vectorizer = BagVectorizer(
        ["a", "b"], np.ones(2), np.ones((BAG_DIM, 2)), np.ones(BAG_DIM)
    )
    save_model(model, tmp_path / "m", fz, {"content_hash": "abc"}, {"note": 1})
    loaded, fz2, config = load_model(tmp_path / "m")
    b = make_batch(model)
    ev = vectors(b, model.text_encoder.dim)
    torch.testing.assert_close(loaded.anchor(b, *ev)[0], model.anchor(b, *ev)[0])
    assert loaded.bag_vectorizer.terms == ["a", "b"]
    assert fz2 == fz and config["data_content_hash"] == "abc" and config["note"] == 1


def test_user_shortcut_feeds_the_user_token_to_the_head(model) -> None:
    b = make_batch(model)
    ev = vectors(b, model.text_encoder.dim)
    emb, user = model.embeds_and_user(b, *ev)
    d = model.causal_lm.config.hidden_size
    assert model.cfg.user_skip and user.shape == (2, 2 * d)  # user token, bag token
    torch.testing.assert_close(emb[b.kinds == L.USER], user[:, :d])  # the tokens the prefix holds
    torch.testing.assert_close(emb[b.kinds == L.EVENT][[4, 9]], user[:, d:])
    h = model.hidden(emb, b.attention_mask)[b.kinds == L.USER_EMB]
    with_user = model.head(h, "anchor", user)
    torch.testing.assert_close(model.anchor(b, *ev)[0], with_user)  # last layer at USER_EMB only
    assert (with_user - model.head(h, "anchor", user.flip(0))).abs().max() > 1e-3


def test_without_the_shortcut_the_head_reads_the_state_only() -> None:
    cfg = resolve(PretrainConfig, "tiny", overrides={"user_skip": False}).model_config(SOURCES, 3)
    m = build_model(cfg).eval()
    assert m.head.user_in is None
    h, user = (
        torch.randn(2, m.causal_lm.config.hidden_size),
        torch.randn(2, m.causal_lm.config.hidden_size),
    )
    torch.testing.assert_close(m.head(h, "anchor", user), m.head(h, "anchor"))
    assert not any(n.startswith("head.user_") for n, _ in m.named_parameters())
