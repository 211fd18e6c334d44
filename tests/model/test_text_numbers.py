"""How the frozen event encoder reads numbers: rounded amounts, one vector per rounded text."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from qanchor.config import resolve
from qanchor.infer.users import TextVectors
from qanchor.model.artifact import build_model, load_model
from qanchor.model.config import ModelConfig, PretrainConfig
from qanchor.model.vectors import encoder_texts


def test_round_keeps_one_significant_digit_of_amounts_and_ids_only():
    texts = [
        "paid 41.43 at CityMarket (groceries)",
        "rated Kolya (1996; comedy): 3 of 5 stars",
        "spent 1,234.50 on 0.35 kg",
        "order 5839201 x 12",
        "9.6 then 0.00",
    ]
    assert encoder_texts(texts, "round") == [
        "paid 40 at CityMarket (groceries)",
        "rated Kolya (1996; comedy): 3 of 5 stars",  # integers below 5 digits stay exact
        "spent 1000 on 0.3 kg",
        "order 6000000 x 12",
        "10 then 0",
    ]
    rounded = encoder_texts(texts, "round")
    assert encoder_texts(rounded, "round") == rounded  # a second pass changes nothing
    assert encoder_texts(texts, "keep") == texts
    with pytest.raises(ValueError, match="text_numbers"):
        encoder_texts(texts, "drop")


def fresh_model(numbers: str):
    pcfg = resolve(PretrainConfig, "tiny", overrides={"text_numbers": numbers, "bag_dim": 0})
    return build_model(pcfg.model_config(["bill"], 0)).eval()


@pytest.mark.parametrize("numbers", ["keep", "round"])
def test_cached_and_on_the_fly_vectors_read_the_same_view(numbers):
    """The cache path (training, batch embedding) and the encoder's own path (a tuned encoder)
    give the same vector; with ``round`` two amounts of one magnitude are one vector."""
    model = fresh_model(numbers)
    texts = ["paid 41.43 at CityMarket", "paid 38.10 at CityMarket", "paid 412.00 at CityMarket"]
    cached = TextVectors(model).all(texts)
    with torch.no_grad():
        direct = model.event_vectors(texts)
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-4)
    same = torch.allclose(cached[0], cached[1])
    assert same == (numbers == "round")
    assert not torch.allclose(cached[0], cached[2])  # another magnitude: another text


def test_presets_round_and_a_model_saved_without_the_field_keeps_exact_texts(tiny_model, tmp_path):
    for preset in ("tiny", "small", "paper"):
        assert resolve(PretrainConfig, preset).model.text_numbers == "round"
    assert ModelConfig().text_numbers == "keep"
    assert load_model(tiny_model)[0].cfg.text_numbers == "round"  # saved with the model
    # A model directory from before the option: its config.json has no text_numbers.
    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["model"]["text_numbers"]
    (old / "config.json").write_text(json.dumps(cfg))
    assert load_model(old)[0].cfg.text_numbers == "keep"


def test_a_table_interns_the_rounded_texts_so_near_amounts_share_one_vector():
    from qanchor.data.snapshots import snapshot_lists
    from qanchor.model.data import UserTable

    rows = [("u1", 1, "paid 41.43 at Deli"), ("u1", 2, "paid 38.10 at Deli"),
            ("u2", 1, "paid 412.00 at Deli"), ("u2", 2, "rated Kolya (1996): 3 of 5")]  # fmt: skip
    h = pd.DataFrame(rows, columns=["user_id", "day", "text"]).assign(source="bill", value=1.0)
    h["ts"] = pd.to_datetime("2026-01-0" + h.pop("day").astype(str), utc=True)
    wide = snapshot_lists(h, pd.Index(["u1", "u2"], name="user_id"), pd.Timestamp("2026-02-01"))
    kept = UserTable.from_snapshots(wide, ["bill"], 5)
    rounded = UserTable.from_snapshots(wide, ["bill"], 5, numbers="round")
    assert len(kept.texts) == 4
    assert rounded.texts == ["paid 40 at Deli", "paid 400 at Deli", "rated Kolya (1996): 3 of 5"]
    u1 = [t for _, ids in rounded.inputs[0].events for t in ids]
    assert u1 == [0, 0]  # both of u1's events read one text, in time order
