"""Shared fixtures: small datasets written in the input contract."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset, cut_events
from qanchor.data.loader import load_dataset
from qanchor.data.synth import SynthConfig, synth


def write_toy_dataset(
    root: Path, users: int = 30, seed: int = 0, sources=("shop", "web", "call")
) -> Path:
    """A tiny dataset with made-up sources (not the synthetic generator's) in the contract.

    Each user has a latent 'buyer' flag; buyers shop more and their labels follow it.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp("2026-03-01", tz="UTC")
    rows, labels = [], []
    for u in range(users):
        uid = f"user{u:03d}"
        buyer = u % 2
        for src in sources:
            n = int(rng.integers(1, 6)) + (4 if (buyer and src == "shop") else 0)
            for _ in range(n):
                ts = start + pd.Timedelta(hours=int(rng.integers(0, 60 * 24)))
                item = rng.choice(["shoes", "books", "phone"] if buyer else ["news", "weather"])
                rows.append(
                    (
                        uid,
                        ts,
                        src,
                        f"{src} event about {item} #{int(rng.integers(100))}",
                        float(rng.random() * 50),
                    )
                )
        labels += [(uid, "buys", buyer), (uid, "reads", 1 - buyer)]
    pd.DataFrame(rows, columns=["user_id", "ts", "source", "text", "value"]).to_parquet(
        root / "events.parquet"
    )
    pd.DataFrame(labels, columns=["user_id", "scenario", "label"]).to_parquet(
        root / "labels.parquet"
    )
    prof = pd.DataFrame({"user_id": [f"user{u:03d}" for u in range(users)], "age": rng.integers(18, 70, users),
                         "tier": rng.choice(["a", "b"], users)})  # fmt: skip
    prof.to_parquet(root / "profiles.parquet")
    scen = [{"name": "buys", "query": "Will this user buy something?"},
            {"name": "reads", "query": "Does this user mostly read?"}]  # fmt: skip
    (root / "scenarios.yaml").write_text(yaml.safe_dump(scen))
    return root


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    return write_toy_dataset(tmp_path / "toy")


@pytest.fixture(scope="session", autouse=True)
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store of the session's own: tests never touch the user's or the project's.

    Session-wide because BentoML resolves its home once per process.
    """
    path = tmp_path_factory.mktemp("bentoml")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENTOML_HOME", str(path))
    mp.setenv("BENTOML_DO_NOT_TRACK", "True")
    yield path
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Event-vector and backbone caches go to a temp dir, never the user's cache."""
    path = tmp_path_factory.mktemp("qanchor-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("QANCHOR_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def built_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 synthetic users, built with the tiny preset (a few seconds)."""
    root = tmp_path_factory.mktemp("tinydata")
    raw = synth(SynthConfig(users=80, seed=1), root / "raw")
    return build_dataset(raw, root / "built", resolve(BuildConfig, "tiny"))


@pytest.fixture(scope="session")
def tiny_events(built_tiny: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``built_tiny``'s history and future events (a build writes none): its input cut again."""
    cfg = resolve(BuildConfig, "tiny")
    cutoff = pd.read_parquet(built_tiny / "users.parquet")["cutoff"].iloc[0]
    events = load_dataset(built_tiny.parent / "raw").events
    return cut_events(events, cutoff, cfg.future_days, cfg.history_days)


@pytest.fixture(scope="session")
def tiny_model(built_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model pretrained for a few steps on ``built_tiny``."""
    from qanchor.model.config import PretrainConfig
    from qanchor.model.pretrain import pretrain

    out = tmp_path_factory.mktemp("tinymodel") / "model"
    return pretrain(built_tiny, out, resolve(PretrainConfig, "tiny", overrides={"steps": 4}))


# --- a real SMTP server (drift alerts, gate rejections) ---------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server() -> Inbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 at a free port; stopped after the test."""
    from aiosmtpd.controller import Controller

    inbox = Inbox(port=free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture
def smtp_env(smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch) -> Inbox:
    """QANCHOR_SMTP_* pointing at the test server."""
    monkeypatch.setenv("QANCHOR_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("QANCHOR_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("QANCHOR_SMTP_FROM", "qanchor-drift@example.org")
    monkeypatch.setenv("QANCHOR_SMTP_TO", "oncall@example.org,ml@example.org")
    return smtp_server
