"""The command line: one clear message and exit code 2 for bad data, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from qanchor.cli import main


def test_build_prints_where_the_report_is(toy_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "built"
    assert (
        main(["data", "build", "--input", str(toy_dataset), "--out", str(out), "--preset", "tiny"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"report:   {out / 'report.md'}" in printed
    assert (out / "report.md").is_file()


def test_bad_data_exits_2_with_the_file_and_column(
    toy_dataset: Path, tmp_path: Path, capsys
) -> None:
    labels = pd.read_parquet(toy_dataset / "labels.parquet")
    labels.loc[3, "label"] = 7
    labels.to_parquet(toy_dataset / "labels.parquet")
    code = main(["data", "build", "--input", str(toy_dataset), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("qanchor: error: labels.parquet, column 'label'")
    assert "Traceback" not in err


def test_unknown_config_field_in_yaml_is_an_error(
    toy_dataset: Path, tmp_path: Path, capsys
) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text("max_events: 3\n")
    code = main(
        [
            "data",
            "build",
            "--input",
            str(toy_dataset),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(cfg),
        ]
    )
    assert code == 2 and "unknown field(s) ['max_events']" in capsys.readouterr().err


def test_console_script_reports_a_missing_dataset_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("qanchor")  # the venv's console script
    assert exe.is_file(), "the qanchor console script is not installed (run make setup)"
    proc = subprocess.run(
        [exe, "data", "build", "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_synth_then_build_end_to_end(tmp_path: Path, capsys) -> None:
    raw, built = tmp_path / "raw", tmp_path / "built"
    assert main(["data", "synth", "--users", "120", "--seed", "3", "--out", str(raw)]) == 0
    assert (
        main(["data", "build", "--input", str(raw), "--out", str(built), "--preset", "tiny"]) == 0
    )
    assert "wrote synthetic dataset (120 users, seed 3)" in capsys.readouterr().out
    users = pd.read_parquet(built / "users.parquet")
    assert len(users) == 120 and set(users["split"]) == {"train", "val", "test"}
    report = (built / "report.md").read_text()
    assert "cash_loan_default" in report and "## Quarantined rows\n\nNone." in report
