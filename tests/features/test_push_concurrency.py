"""Two processes (two service replicas) pushing to the same user at once lose no event."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from feature_helpers import as_lists

from qanchor.features import FeatureStoreConfig, online_snapshots, sync

WORKER = """
import sys, time
from pathlib import Path
import pandas as pd
from qanchor.features import FeatureStoreConfig, online_snapshots, push_events

data, repo, work, user, source, go = sys.argv[1:7]
cfg = FeatureStoreConfig(data=data, repo=repo, work_dir=work)
online_snapshots(cfg, [user])  # import Feast and open the store before the start signal
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.01)
for i in range(8):
    ts = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(minutes=i)
    push_events(cfg, pd.DataFrame({"user_id": [user], "ts": [ts], "source": [source],
                                   "text": [f"{source} replica event {i}"]}))
print("done", flush=True)
"""


def test_concurrent_pushes_to_one_user_keep_every_event(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    cfg = FeatureStoreConfig(
        data=str(built_tiny), repo=str(repo_copy), work_dir=str(tmp_path / "fs")
    )
    sync(cfg)
    snaps = online_snapshots(cfg, ["u000001"]).snapshots
    user = "u000001"
    # Each replica pushes to its own source of the same user: their events never look like
    # redeliveries of each other's, yet both rewrite the same online row.
    sources = sorted(set(snaps["bag_source"][0]))[:2]
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, cfg.data, cfg.repo, cfg.work_dir,
                               user, src, str(go)], stdout=subprocess.PIPE, text=True)
             for src in sources]  # fmt: skip
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        assert p.wait(timeout=300) == 0 and p.stdout.read().strip() == "done"
    row = as_lists(online_snapshots(cfg, [user]).snapshots)[user]
    bag = set(zip(row["bag_source"], row["bag_text"], strict=True))
    for src in sources:
        assert {(src, f"{src} replica event {i}") for i in range(8)} <= bag, src
