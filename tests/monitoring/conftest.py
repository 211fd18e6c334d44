"""Fixtures of the drift tests: a real SMTP server on 127.0.0.1, built datasets with and without shift."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.data.synth import SynthConfig, synth

# 400 users: at ~100 users K-S tests on the synthetic aggregates cannot tell a moderate shift from
# sampling noise; at 400 the shifted world drifts on ~40% of the columns, a fresh sample of the
# same world on at most ~8% (threshold 20%), and synth + build still take ~2 s.
USERS = 400
SHIFT = {"shift_after": "2026-02-01", "shift_strength": 2.0}


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


def _built(root: Path, name: str, **synth_kw) -> Path:
    raw = synth(SynthConfig(users=USERS, **synth_kw), root / name / "raw")
    return build_dataset(raw, root / name / "built", resolve(BuildConfig, "tiny"))


@pytest.fixture(scope="session")
def drift_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built synthetic datasets: the reference (seed 0), and two fresh samples (seed 1) of the
    same world, one with the generator's behaviour shift and one without."""
    root = tmp_path_factory.mktemp("driftdata")
    return {
        "reference": _built(root, "reference", seed=0),
        "stationary": _built(root, "stationary", seed=1),
        "shifted": _built(root, "shifted", seed=1, **SHIFT),
    }
