"""Coarse tokens read the whole history: an event far beyond the recent cap still moves them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.model import layout as L
from qanchor.model.artifact import build_model
from qanchor.model.config import PretrainConfig
from qanchor.model.data import UserTable

N_EVENTS = 600


def write_log(root: Path, oldest_text: str) -> Path:
    """Two users; u0 has 600 'shop' events, the oldest of which reads ``oldest_text``."""
    root.mkdir(parents=True)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [("u0", start + pd.Timedelta(hours=i), "shop", f"bought item {i % 40}", 1.0)
            for i in range(1, N_EVENTS)]  # fmt: skip
    rows.append(("u0", start, "shop", oldest_text, 1.0))
    rows += [
        ("u1", start + pd.Timedelta(days=i), "shop", f"bought item {i}", 1.0) for i in range(5)
    ]
    pd.DataFrame(rows, columns=["user_id", "ts", "source", "text", "value"]).to_parquet(
        root / "events.parquet"
    )
    labels = pd.DataFrame({"user_id": ["u0", "u1"], "scenario": "s", "label": [1, 0]})
    labels.to_parquet(root / "labels.parquet")
    (root / "scenarios.yaml").write_text(yaml.safe_dump([{"name": "s", "query": "Buys?"}]))
    return root


def tokens(tmp_path: Path, oldest_text: str, whole_history: bool) -> dict[str, torch.Tensor]:
    """u0's user, modal and event tokens from a tiny model over a fresh build of the log."""
    tag = f"{abs(hash(oldest_text))}-{whole_history}"
    raw = write_log(tmp_path / f"raw-{tag}", oldest_text)
    # The future window would swallow the last days: cut after the last event instead.
    cfg = resolve(BuildConfig, "tiny", overrides={"cutoff": "2026-02-01"})
    built = build_dataset(raw, tmp_path / f"built-{tag}", cfg)
    snaps = pd.read_parquet(built / "snapshots.parquet")
    pcfg = resolve(PretrainConfig, "tiny", overrides={"whole_history": whole_history, "bag_dim": 0})
    model = build_model(pcfg.model_config(["shop"], 0)).eval()
    table = UserTable.from_snapshots(snaps, ["shop"], pcfg.model.events_per_source,
                                     whole_history=whole_history)  # fmt: skip
    assert sum(len(t) for _, t in table.inputs[0].events) == pcfg.model.events_per_source
    vecs = model.text_encoder.encode(table.texts)
    lay = model.layout
    batch = L.collate([[lay.prefix(table.inputs[0])]], [table.inputs[0]], lay.pad)
    with torch.no_grad():
        emb, _ = model.embeds_and_user(
            batch, vecs[batch.ev_text], vecs[batch.bag_text] if whole_history else None
        )
    kinds = batch.kinds[0]
    return {name: emb[0, kinds == kind] for name, kind in
            (("user", L.USER), ("modal", L.MODAL), ("event", L.EVENT))}  # fmt: skip


@pytest.mark.parametrize("whole_history", [True, False])
def test_the_oldest_of_600_events_reaches_the_coarse_tokens(
    tmp_path: Path, whole_history: bool
) -> None:
    a = tokens(tmp_path, "booked a flight to Lisbon", whole_history)
    b = tokens(tmp_path, "paid a parking fine downtown", whole_history)
    # Event tokens hold only the most recent events: the 600th-newest is never among them.
    torch.testing.assert_close(a["event"], b["event"])
    moved = (a["user"] - b["user"]).abs().max() > 1e-4 and (
        a["modal"] - b["modal"]
    ).abs().max() > 1e-4
    # Whole history: the coarse tokens see it; capped (the old behaviour): they cannot.
    assert bool(moved) == whole_history
