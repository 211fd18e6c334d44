"""Progress bars: lively on a terminal, a few lines in a log."""

from __future__ import annotations

import io

from qanchor.progress import QUIET_INTERVAL, bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_log_leaves_its_first_and_last_state(monkeypatch) -> None:
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    log = io.StringIO()
    with bar(total=5000, desc="pretrain", file=log) as b:
        assert b.mininterval == QUIET_INTERVAL
        for _ in range(5000):
            b.update()
    states = [s for s in log.getvalue().replace("\n", "\r").split("\r") if s.strip()]
    assert states[0].startswith("pretrain:   0%")
    assert states[-1].startswith("pretrain: 100%") and "5000/5000" in states[-1]
    assert len(states) <= 3  # the loop takes far less than QUIET_INTERVAL


def test_a_bar_on_a_terminal_redraws_often(monkeypatch) -> None:
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    with bar(range(3), desc="tune", file=Terminal()) as b:
        assert b.mininterval == 0.1


def test_tqdm_variables_still_win(monkeypatch) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0.5")  # what make run sets on a terminal
    with bar(range(3), desc="evaluate", file=io.StringIO()) as b:
        assert b.mininterval == 0.5
