"""Pretraining on a tiny random model: learning, exact resume, data parallelism, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from qanchor.cli import main
from qanchor.config import resolve
from qanchor.model.config import PretrainConfig
from qanchor.model.pretrain import pretrain


def tiny(**overrides) -> PretrainConfig:
    return resolve(PretrainConfig, "tiny", overrides=overrides)


def weights(model_dir: Path) -> dict:
    return load_file(str(model_dir / "weights.safetensors"))


def test_loss_falls_on_a_tiny_run(built_tiny: Path, tmp_path: Path) -> None:
    # Margin filter off: it changes the partition as embeddings move, so its loss values are
    # not comparable across steps (it can rise while the model improves).
    out = pretrain(built_tiny, tmp_path / "m", tiny(steps=40, log_every=1, margin_filter=False))
    curve = np.array(json.loads((out / "config.json").read_text())["training"]["curve"])
    first, last = curve[:8].mean(0), curve[-8:].mean(0)
    assert last[1] < first[1], "total loss did not fall"
    assert last[2] < first[2], "contrastive loss did not fall"
    assert last[3] < first[3] - 0.1, "next-token loss did not fall"
    config = json.loads((out / "config.json").read_text())
    assert config["retrieval"]["future"]["users"] > 0 and config["model"]["sources"]
    assert (out / "tokenizer").is_dir() and (out / "data_manifest.json").is_file()


def test_resumed_run_ends_with_the_same_weights(built_tiny: Path, tmp_path: Path) -> None:
    cfg = tiny(steps=6, lora_dropout=0.1)  # dropout on: resume must restore the RNG too
    whole = pretrain(built_tiny, tmp_path / "whole", cfg)
    ckpt = pretrain(built_tiny, tmp_path / "split", cfg, stop_after=3)
    assert ckpt.name == "split.ckpt" and (ckpt / "step-00000003" / "state.pt").is_file()
    assert not (tmp_path / "split").exists()  # no model until training has finished
    resumed = pretrain(built_tiny, tmp_path / "split", cfg)
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name


def test_ablation_switches_train(built_tiny: Path, tmp_path: Path) -> None:
    cfg = tiny(steps=2, user_tokens=False, margin_filter=False, lm_weight=0.0, neg_terms="uv")
    out = pretrain(built_tiny, tmp_path / "abl", cfg)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["user_tokens"] is False and config["training"]["lm"] > 0


def test_encoder_lora_mode_trains_the_event_encoder(built_tiny: Path, tmp_path: Path) -> None:
    out = pretrain(built_tiny, tmp_path / "enc", tiny(steps=2, encoder_lora_r=2))
    assert any("text_encoder" in k and "lora" in k for k in weights(out))


def test_torchrun_two_processes_match_one(
    built_tiny: Path, tmp_path: Path, model_cache: Path
) -> None:
    args = [
        "pretrain",
        "--data",
        str(built_tiny),
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "8",
    ]
    one = pretrain(built_tiny, tmp_path / "one", tiny(steps=3, batch_size=8))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "QANCHOR_CACHE": str(model_cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "qanchor.cli", *args,
         "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = weights(one), weights(tmp_path / "two")
    # Adam divides by sqrt(v): for a weight whose gradient is near zero, the float noise of a
    # different reduction order moves the update by a few percent of one step (lr 3e-3), so
    # the tolerance is 1e-4, well under the up to 9e-3 a weight can move in 3 steps.
    for name in a:
        np.testing.assert_allclose(
            a[name].numpy(), b[name].numpy(), atol=1e-4, rtol=1e-4, err_msg=name
        )


def test_cli_pretrain_reports_bad_batch_split(built_tiny: Path, tmp_path: Path, capsys) -> None:
    code = main(["pretrain", "--data", str(built_tiny), "--out", str(tmp_path / "x"), "--preset", "tiny",
                 "--batch-size", "8", "--grad-accum", "3"])  # fmt: skip
    assert code == 2 and "must divide" in capsys.readouterr().err


def test_cli_pretrain_rejects_a_non_built_directory(tmp_path: Path, capsys) -> None:
    code = main(
        ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "x"), "--preset", "tiny"]
    )
    assert code == 2 and "not a built dataset" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_presets_resolve(preset: str) -> None:
    cfg = resolve(PretrainConfig, preset)
    assert cfg.model.backbone == "default" and cfg.batch_size % cfg.grad_accum == 0


def test_the_head_statistics_are_saved_and_loaded(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The head was trained on inputs standardised by its calibration statistics: a loaded
    model must use the same ones, not the identity it was built with."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from qanchor.model.artifact import calibration_buffers, load_model

    saved = weights(tiny_model)
    stats = {n: saved[n] for n in ("head.anchor_shift", "head.anchor_scale",
                                   "head.semantic_shift", "head.semantic_scale")}  # fmt: skip
    assert all(not torch.equal(t, torch.zeros_like(t)) for n, t in stats.items() if "shift" in n)
    model, _, _ = load_model(tiny_model)
    for name, tensor in stats.items():
        torch.testing.assert_close(dict(model.named_buffers())[name], tensor)
    # A model saved before the statistics were kept loads as it was always served: identity.
    old = shutil.copytree(tiny_model, tmp_path / "old")
    save_file({n: t for n, t in saved.items() if n not in calibration_buffers(model)},
              str(old / "weights.safetensors"))  # fmt: skip
    with caplog.at_level("WARNING"):
        legacy, _, _ = load_model(old)
    assert "calibration statistics" in caplog.text
    assert torch.equal(legacy.head.anchor_shift, torch.zeros_like(legacy.head.anchor_shift))


def test_a_user_cap_reads_a_sample_of_training_users_and_every_retrieval_user(
    built_tiny: Path,
) -> None:
    import pandas as pd
    import torch

    from qanchor.eval.probe import ranked
    from qanchor.model import trainer as T
    from qanchor.model.pretrain import prepare
    from qanchor.model.retrieval import KINDS, retrieval_rows
    from qanchor.model.sample import pretrain_users

    users = pd.read_parquet(built_tiny / "users.parquet")
    train = users.loc[users["split"] == "train", "user_id"]
    assert pretrain_users(built_tiny, len(train), 4) is None  # no more than the cap: all
    cfg = tiny(max_train_users=10, eval_users=4)
    s = prepare(built_tiny, cfg, T.Runtime(torch.device("cpu")))
    read, scored = set(s.table.user_ids), set()
    # The retrieval check scores the same users as with the whole build loaded.
    whole = pd.read_parquet(built_tiny / "pairs.parquet")
    test = users.loc[users["split"] == "test", "user_id"]
    for kind in KINDS:
        expected = retrieval_rows(whole, test, 4, kind)["user_id"].tolist()
        got = retrieval_rows(s.data.pairs, s.data.split_users("test"), 4, kind)
        assert expected and got["user_id"].tolist() == expected
        scored.update(expected)
    assert read == set(ranked(train)[:10]) | scored  # no other user's rows
