"""The built dataset's manifest (machine-readable) and build report (for people)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

import qanchor
from qanchor.data.loader import Dataset
from qanchor.io import sha256_file

SCHEMA_VERSION = 1


def write_manifest(
    out: Path,
    ds: Dataset,
    tables: dict[str, pd.DataFrame],
    rows: dict[str, int],
    cutoff: pd.Timestamp,
    config: dict[str, Any],
    quarantined: dict[str, int],
    seconds: float,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json``: schema version, counts, hashes, config. Returns the dict.

    ``content_hash`` covers the output files' bytes, so two builds of the same input with the
    same config and library version have the same hash; later stages record it to say exactly
    which data a model was trained on.
    """
    files = {
        p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()
    }
    content = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in files.items()).encode()).hexdigest()
    users = tables["users.parquet"]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "qanchor_version": qanchor.__version__,
        "input": str(Path(ds.root)),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 2),
        "cutoff": cutoff.isoformat(),
        "sources": ds.sources,
        "source_values": {s: ds.source_spec(s).value for s in ds.sources},
        "sources_without_events": sources_without_events(ds),
        "scenarios": [s.name for s in ds.scenarios],
        "has_profiles": ds.profiles is not None,
        "rows": {name: int(n) for name, n in rows.items()},
        "users_per_split": {
            k: int(v) for k, v in users["split"].value_counts().sort_index().items()
        },
        "quarantined": quarantined,
        "nulled": ds.nulled,
        "links": ds.links,
        "warnings": list(warnings or []),
        "config": config,
        "files": files,
        "content_hash": content,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def sources_without_events(ds: Dataset) -> list[str]:
    """Sources ``sources.yaml`` declares but no kept event has: a warning, not an error."""
    return sorted(set(ds.source_specs) - set(ds.sources))


def _sources_section(ds: Dataset) -> str:
    """The "Sources" section: what each source's value means, and declared sources never seen."""
    rows = []
    for s in ds.sources:
        spec = ds.source_spec(s)
        scale = f"{spec.scale[0]:g} to {spec.scale[1]:g}" if spec.scale else ""
        detail = spec.currency or spec.unit or scale
        rows.append((s, spec.value, detail, spec.description.replace("|", "\\|")))
    table = pd.DataFrame(rows, columns=["source", "value", "currency/unit/scale", "description"])
    text = f"## Sources\n\n{_md_table(table)}"
    missing = sources_without_events(ds)
    if missing:
        text += f"\n\n**Warning:** `sources.yaml` declares sources without events: {missing}."
    return text


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_report(
    out: Path,
    ds: Dataset,
    tables: dict[str, pd.DataFrame],
    hist: pd.DataFrame,
    fut: pd.DataFrame,
    manifest: dict[str, Any],
) -> Path:
    """Write ``report.md``: counts per source and split, quarantine, label rates per scenario.

    ``hist`` and ``fut`` are the build's history and future events (not among ``tables``).
    """
    per_source, per_split, rates = _count_tables(ds, tables, hist, fut)
    q = [(f, r, n) for f, reasons in ds.quarantine_counts().items() for r, n in reasons.items()]
    qtab = pd.DataFrame(q, columns=["file", "reason", "rows"]) if q else None
    pairs = tables["pairs.parquet"].groupby(["kind"]).size().rename("pairs").reset_index()
    text = "\n\n".join(
        [
            f"# Dataset build report\n\nInput `{manifest['input']}`; cutoff {manifest['cutoff']}; "
            f"built in {manifest['build_seconds']} s; content hash `{manifest['content_hash'][:16]}`.",
            *(
                ["## Warnings\n\n" + "\n".join(f"- {w}" for w in manifest["warnings"])]
                if manifest.get("warnings")
                else []
            ),  # fmt: skip
            f"## Events per source\n\n{_md_table(per_source)}",
            _sources_section(ds),
            f"## Users per split\n\n{_md_table(per_split)}",
            f"## Label rates per scenario\n\n{_md_table(rates)}",
            "## Quarantined rows\n\n"
            + (
                _md_table(qtab) + "\n\nThe rows are in `quarantine/`."
                if qtab is not None
                else "None."
            ),
            f"## UserU pretraining pairs\n\n{_md_table(pairs)}",
            "## Example pairs\n\n" + _examples(tables["pairs.parquet"]),
        ]
    )
    path = out / "report.md"
    path.write_text(text + "\n")
    return path


def _count_tables(
    ds: Dataset, tables: dict[str, pd.DataFrame], hist: pd.DataFrame, fut: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The report's events per source, users per split and label rates per scenario."""
    users, labels = tables["users.parquet"], tables["labels.parquet"]
    per_source = (
        pd.DataFrame(
            {
                "history events": hist.groupby("source").size(),
                "future events": fut.groupby("source").size(),
                "users with history": hist.groupby("source")["user_id"].nunique(),
            }
        )
        .fillna(0)
        .astype(int)
        .rename_axis("source")
        .reset_index()
    )
    per_split = (
        users.groupby("split")
        .agg(
            users=("user_id", "size"),
            history_events=("n_history", "sum"),
            future_events=("n_future", "sum"),
        )
        .reset_index()
    )
    rates = labels.pivot_table(index="scenario", columns="split", values="label", aggfunc="mean")
    rates["all"] = labels.groupby("scenario")["label"].mean()
    rates = rates.round(3).reset_index()
    group = {s.name: s.group for s in ds.scenarios}
    rates.insert(1, "group", rates["scenario"].map(group).fillna(""))
    return per_source, per_split, rates


def _examples(pairs: pd.DataFrame, n: int = 3) -> str:
    sample = pairs.drop_duplicates("topic").head(n + 2)
    return "\n".join(f"- **{r.query}** ({r.user_id})\n  {r.answer}" for r in sample.itertuples())
