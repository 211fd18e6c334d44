"""`make run`'s console: a line per stage, progress bars, the log kept whole in a file."""

from __future__ import annotations

import io
import re
from pathlib import Path

from qanchor.orchestrate.console import SAY, RunConsole

# Lines as a tiny `dag.test()` run prints them (shortened), noise included.
RUN = [
    "2026-12-04T19:54:00.514258Z [info     ] [DAG TEST] starting task_id=build map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    "    [KFP Executor 2026-12-04 19:54:06,795 INFO]: Got executor_input:",
    '    {"inputs": {"parameterValues": {"preset": "tiny"}}}',
    "2026-12-04T19:54:10.634846Z [info     ] [DAG TEST] end task task_id=build map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
    "2026-12-04T19:55:10.232963Z [info     ] [DAG TEST] starting task_id=pretrain map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    "/app/qanchor/model/pretrain.py:256: UserWarning: Converting a tensor with requires_grad=True to a scalar",
    "    pretrain:   0%|          | 0/12 [00:00<?, ?it/s]",
    "    pretrain:  50%|█████     | 6/12 [00:00<00:00, 16.96it/s, loss=7.977]",
    "    pretrain: 100%|██████████| 12/12 [00:00<00:00, 17.27it/s, loss=7.811]",
    "    pretrain: 100%|██████████| 12/12 [00:00<00:00, 16.01it/s, loss=7.811]",
    "    [transformers] Token indices sequence length is longer than the specified maximum sequence length for this model (520 > 512).",
    "2026-12-04T19:55:35.049407Z [error    ] XCom not found                 [airflow.sdk.api.client] dag_id=qanchor_retrain",
    "2026-12-04T19:55:34.982206Z [info     ] [DAG TEST] end task task_id=pretrain map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
    "2026-12-04T19:55:34.982206Z [info     ] [DAG TEST] starting task_id=tune map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    "19:54:10.585 - INFO - Task \x1b[96m'tune-scenarios'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m",
    "gate: candidate trails the served model",
    f"{SAY}qanchor_retrain manual__1: failed",
]


def _console(tmp_path: Path) -> tuple[RunConsole, io.StringIO]:
    out = io.StringIO()
    console = RunConsole(tmp_path / "logs" / "run.log", out)
    for line in RUN:
        console.feed(line)
    return console, out


def test_the_console_shows_stages_bars_and_said_lines_only(tmp_path: Path) -> None:
    console, out = _console(tmp_path)
    console.close(ok=True)
    # Stage lines start with the clock (HH:MM:SS and two spaces): compare what follows it.
    shown = [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in out.getvalue().splitlines()]
    assert shown == [
        "build        started",
        shown[1],
        "pretrain     started",
        "pretrain:  50%|█████     | 6/12 [00:00<00:00, 16.96it/s, loss=7.977]",
        "pretrain: 100%|██████████| 12/12 [00:00<00:00, 17.27it/s, loss=7.811]",
        shown[5],
        "tune[0]      started",
        "tune-scenarios FAILED",
        "gate: candidate trails the served model",
        "qanchor_retrain manual__1: failed",
        f"full log: {tmp_path / 'logs' / 'run.log'}",
    ]
    assert shown[1].startswith("build        done in ") and shown[5].startswith(
        "pretrain     done in "
    )
    text = out.getvalue()
    assert "error" not in text.lower() and "warning" not in text.lower()
    assert (tmp_path / "logs" / "run.log").read_text().splitlines() == RUN  # everything kept


def test_a_failed_run_prints_the_tail_of_its_log(tmp_path: Path) -> None:
    console, out = _console(tmp_path)
    console.close(ok=False)
    text = out.getvalue()
    assert f"--- last {len(RUN)} lines of the log ---" in text
    assert "XCom not found" in text and text.rstrip().endswith(str(tmp_path / "logs" / "run.log"))


def test_a_long_bar_in_a_log_is_four_lines(tmp_path: Path) -> None:
    """Not a terminal (make run | tee): a line past each quarter, however often tqdm redraws."""
    out = io.StringIO()
    console = RunConsole(tmp_path / "run.log", out)
    console.feed("[DAG TEST] starting task_id=evaluate map_index=-1")
    for done in range(0, 201):
        console.feed(f"evaluate: {done * 100 // 200:3d}%|#| {done}/200 [00:01<00:00]")
    console.feed("evaluate: 100%|#| 200/200 [00:01<00:00]")  # tqdm's close redraws the end
    bars = [line for line in out.getvalue().splitlines() if line.startswith("evaluate:")]
    assert [line.split("|")[0] for line in bars] == [
        "evaluate:  25%",
        "evaluate:  50%",
        "evaluate:  75%",
        "evaluate: 100%",
    ]


def test_a_line_written_right_after_a_bar_is_not_shown_as_part_of_it(tmp_path: Path) -> None:
    """tqdm ends a redraw without a newline, so the next record continues the bar's line."""
    out = io.StringIO()
    console = RunConsole(tmp_path / "run.log", out)
    console.feed(
        "evaluate:  43%|████▎     | 3/7 [00:31<00:42, 10.58s/model, tfidf_lr]  [KFP Executor "
        "2026-12-04 20:29:07,946 INFO]: text_mean_pool: 2000 users x 32 dims"
    )
    console.feed(f"pretrain: 100%|██████████| 12/12 [00:00<00:00, 15.18it/s]{SAY}run: success")
    assert out.getvalue().splitlines() == [
        "evaluate:  43%|████▎     | 3/7 [00:31<00:42, 10.58s/model, tfidf_lr]",
        "pretrain: 100%|██████████| 12/12 [00:00<00:00, 15.18it/s]",
        "run: success",
    ]
