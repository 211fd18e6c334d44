"""``sources.yaml``: parsing and its errors, and pair wording that follows what values mean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qanchor.cli import main
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.data.loader import load_dataset
from qanchor.data.pairs import TemplateGenerator
from qanchor.data.sources import SourceSpec, read_sources, spec_for, write_sources
from qanchor.data.stats import Action, UserStats
from qanchor.errors import ContractError

MONEY = re.compile(r"money|spend|amount|currenc|paid|\bpay", re.IGNORECASE)
CFG = BuildConfig(future_days=10, max_events_per_source=3, uqa_per_user=20)

EXAMPLE = """\
rating:
  description: a movie the user rated, with its release year and genres
  value: rating
  scale: [1, 5]
bill:
  description: payments
  value: amount
  currency: CNY
session:
  value: duration
  unit: minutes
basket:
  value: count
search:
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_parses(tmp_path: Path) -> None:
    specs = read_sources(_write(tmp_path, EXAMPLE))
    assert list(specs) == ["rating", "bill", "session", "basket", "search"]
    assert specs["rating"] == SourceSpec(
        "rating", "a movie the user rated, with its release year and genres", "rating",
        scale=(1.0, 5.0),
    )  # fmt: skip
    assert specs["bill"].value == "amount" and specs["bill"].currency == "CNY"
    assert specs["session"].unit == "minutes" and specs["basket"].value == "count"
    assert specs["search"] == SourceSpec("search")  # listed without a spec: neutral
    assert spec_for(specs, "unlisted") == SourceSpec("unlisted", value="none")


def test_absent_or_empty_file_means_no_declarations(tmp_path: Path) -> None:
    assert read_sources(tmp_path / "sources.yaml") == {}
    assert read_sources(_write(tmp_path, "")) == {}


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    specs = read_sources(_write(tmp_path, EXAMPLE))
    write_sources(specs.values(), tmp_path / "out.yaml")
    assert read_sources(tmp_path / "out.yaml") == specs
    assert "scale: [1, 5]" in (tmp_path / "out.yaml").read_text()


BAD = [
    # (id, file content, pattern the ContractError message must match)
    ("not yaml", "bill: [unclosed", r"^sources\.yaml: not valid YAML"),
    ("a list", "- bill\n- search\n", r"^sources\.yaml: must be a mapping .*not a list"),
    ("spec not a mapping", "bill: amount\n", r"(?s)^sources\.yaml: a source's spec must be a mapping.*source 'bill'"),
    ("unknown key", "bill: {value: amount, currncy: CNY}\n",
     r"(?s)^sources\.yaml: unknown key\(s\) \['currncy'\].*source 'bill'"),
    ("unknown kind", "bill: {value: money}\n",
     r"(?s)^sources\.yaml, column 'value': unknown value kind 'money'; use one of \['amount', .*source 'bill'"),
    ("number description", "bill: {description: 3}\n",
     r"(?s)^sources\.yaml, column 'description': must be a string, got int.*source 'bill'"),
    ("scale of one", "rating: {value: rating, scale: [5]}\n",
     r"(?s)^sources\.yaml, column 'scale': must be two numbers \[low, high\], got \[5\].*source 'rating'"),
    ("scale of words", "rating: {value: rating, scale: [low, high]}\n",
     r"^sources\.yaml, column 'scale': must be two numbers"),
    ("scale reversed", "rating: {value: rating, scale: [5, 1]}\n",
     r"(?s)^sources\.yaml, column 'scale': low must be below high, got \[5, 1\].*source 'rating'"),
    ("currency on a rating", "rating: {value: rating, currency: CNY}\n",
     r"(?s)^sources\.yaml, column 'currency': 'currency' applies only to value: amount, not rating"),
    ("unit without a kind", "session: {unit: minutes}\n",
     r"^sources\.yaml, column 'unit': 'unit' applies only to value: duration, not none"),
    ("number as name", "1: {value: count}\n",
     r"^sources\.yaml: source names must be non-empty strings, got 1"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_sources_yaml_names_file_key_and_entry(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ContractError, match=pattern) as info:
        read_sources(_write(tmp_path, text))
    assert info.value.file == "sources.yaml"


def test_loader_reads_it_and_fills_in_the_neutral_default(make_dataset) -> None:
    ds = load_dataset(make_dataset(sources_yaml={"bill": {"value": "amount", "currency": "EUR"}}))
    assert ds.source_spec("bill").currency == "EUR"
    assert ds.source_spec("search") == SourceSpec("search")
    assert load_dataset(make_dataset(sources_yaml=None)).source_specs == {}


def test_a_bad_sources_yaml_exits_2_through_the_cli(make_dataset, tmp_path: Path, capsys) -> None:
    root = make_dataset(sources_yaml={"bill": {"value": "amount", "scale": [1, 5]}})
    code = main(["data", "build", "--input", str(root), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "sources.yaml, column 'scale'" in err and "Traceback" not in err


# --- wording ---------------------------------------------------------------------------------


def _stats() -> UserStats:
    """A user with a payments source, a rating source and a source nobody declared."""
    return UserStats(
        "u1",
        counts={"bill": 5, "rating": 3, "misc": 2},
        actions={
            "bill": [Action("paid at cafe", 3, 30.0, 3), Action("paid rent", 2, 900.0, 2)],
            "rating": [Action("toy story", 2, 9.0, 2), Action("heat", 1, 3.0, 1)],
            "misc": [Action("clicked banner", 2, 7.0, 2)],
        },
        active_days=4,
    )


def _all_pairs(specs: dict[str, SourceSpec], stats: UserStats | None = None) -> list:
    return TemplateGenerator({}, sources=specs).generate(stats or _stats(), 100)


def _texts(pairs: list) -> str:
    return " ".join(p.query + " " + p.answer for p in pairs)


def test_rating_values_are_called_ratings_never_money() -> None:
    only_ratings = UserStats(
        "u2", counts={"rating": 3}, actions={"rating": _stats().actions["rating"]}
    )
    pairs = _all_pairs({"rating": SourceSpec("rating", value="rating", scale=(1, 5))}, only_ratings)
    by_topic = {p.topic: p for p in pairs}
    assert by_topic["ratings"].query == "What does this user rate highest?"
    assert by_topic["ratings"].answer == (
        "Highest-rated: toy story (rating, 4.5 of 5 on average over 2 ratings), "
        "heat (rating, rated 3 of 5)."
    )
    assert not MONEY.search(_texts(pairs)), _texts(pairs)


def test_without_declarations_the_wording_is_neutral() -> None:
    pairs = _all_pairs({})
    by_topic = {p.topic: p for p in pairs}
    assert "spending" not in by_topic and "ratings" not in by_topic
    assert by_topic["values"].answer.startswith("Largest values: paid rent (bill, 900 in total)")
    # The event texts themselves say "paid"; only the template's own words must stay neutral.
    template_words = by_topic["values"].query + by_topic["values"].answer.split(":")[0]
    assert not MONEY.search(template_words)
    assert not any(MONEY.search(p.query) for p in pairs)


def test_an_amount_source_with_currency_names_it() -> None:
    specs = {"bill": SourceSpec("bill", "payments", "amount", currency="CNY")}
    by_topic = {p.topic: p for p in _all_pairs(specs)}
    assert by_topic["spending"].query == "What does this user spend the most money on?"
    assert by_topic["spending"].answer == (
        "Largest amounts go to paid rent (bill, 900 CNY in total), "
        "paid at cafe (bill, 30 CNY in total)."
    )
    assert by_topic["source:bill"].query == "What does this user do in bill (payments)?"


def test_mixed_sources_are_each_worded_by_their_own_kind() -> None:
    specs = {
        "bill": SourceSpec("bill", value="amount"),
        "rating": SourceSpec("rating", value="rating"),
    }
    by_topic = {p.topic: p for p in _all_pairs(specs)}
    assert "(bill," in by_topic["spending"].answer and "(rating," not in by_topic["spending"].answer
    assert "(rating," in by_topic["ratings"].answer and "(bill," not in by_topic["ratings"].answer
    assert "(misc," in by_topic["values"].answer and not MONEY.search(by_topic["values"].query)
    assert "toy story (rating, 4.5 on average over 2 ratings)" in by_topic["ratings"].answer


def test_durations_and_counts_read_as_time_and_quantities() -> None:
    specs = {
        "bill": SourceSpec("bill", value="duration", unit="minutes"),
        "rating": SourceSpec("rating", value="count"),
        "misc": SourceSpec("misc", value="duration"),
    }
    by_topic = {p.topic: p for p in _all_pairs(specs)}
    assert by_topic["time"].answer == (
        "Most time goes to paid rent (bill, 900 minutes in total), paid at cafe (bill, "
        "30 minutes in total), clicked banner (misc, total duration 7)."
    )
    assert by_topic["quantities"].answer.startswith("Largest quantities: toy story (rating, 9 in")
    assert not MONEY.search(by_topic["time"].query + by_topic["quantities"].query)


def test_the_rotation_stays_deterministic_per_user() -> None:
    specs = {"rating": SourceSpec("rating", value="rating")}
    gen = TemplateGenerator({}, salt=3, sources=specs)
    first = gen.generate(_stats(), 3)
    assert first == gen.generate(_stats(), 3) and len(first) == 3
    assert len({p.topic for p in first}) == 3


# --- the build -------------------------------------------------------------------------------


def test_build_with_rating_sources_never_speaks_of_money(toy_dataset: Path, tmp_path: Path) -> None:
    specs = {s: {"value": "rating", "scale": [0, 50]} for s in ("shop", "web", "call")}
    specs["gone"] = {"value": "count", "description": "a source with no events"}
    (toy_dataset / "sources.yaml").write_text(yaml.safe_dump(specs))
    out = build_dataset(toy_dataset, tmp_path / "b", CFG)
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert (pairs["topic"] == "ratings").any()
    assert not pairs["query"].str.contains(MONEY).any()
    assert not pairs["answer"].str.contains(MONEY).any()
    built = read_sources(out / "sources.yaml")
    assert list(built) == ["call", "shop", "web"] and built["web"].scale == (0.0, 50.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_values"] == {"call": "rating", "shop": "rating", "web": "rating"}
    assert manifest["sources_without_events"] == ["gone"] and "sources.yaml" in manifest["files"]
    report = (out / "report.md").read_text()
    assert "declares sources without events: ['gone']" in report
    assert "| web | rating | 0 to 50 |" in report


def test_build_without_sources_yaml_is_neutral(toy_dataset: Path, tmp_path: Path) -> None:
    out = build_dataset(toy_dataset, tmp_path / "n", CFG)
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert (pairs["topic"] == "values").any() and not (pairs["topic"] == "spending").any()
    assert not pairs["query"].str.contains(MONEY).any()
    assert not pairs["answer"].str.contains(MONEY).any()
    assert read_sources(out / "sources.yaml") == {s: SourceSpec(s) for s in ("call", "shop", "web")}


def test_source_semantics_off_ignores_the_file(toy_dataset: Path, tmp_path: Path) -> None:
    specs = {s: {"value": "rating", "scale": [0, 50]} for s in ("shop", "web", "call")}
    (toy_dataset / "sources.yaml").write_text(yaml.safe_dump(specs))
    on = pd.read_parquet(build_dataset(toy_dataset, tmp_path / "on", CFG) / "pairs.parquet")
    off_cfg = BuildConfig(**{**CFG.__dict__, "source_semantics": False})
    out = build_dataset(toy_dataset, tmp_path / "off", off_cfg)
    off = pd.read_parquet(out / "pairs.parquet")
    assert (on["topic"] == "ratings").any() and not (off["topic"] == "ratings").any()
    assert (off["topic"] == "values").any()
    assert read_sources(out / "sources.yaml") == {s: SourceSpec(s) for s in ("call", "shop", "web")}


def test_synthetic_data_declares_its_sources_and_keeps_money_for_bills(built_tiny: Path) -> None:
    raw = read_sources(built_tiny.parent / "raw" / "sources.yaml")
    assert {s: spec.value for s, spec in raw.items()} == {
        "bill": "amount", "miniprogram": "duration", "spm": "duration",
        "search": "none", "app": "none",
    }  # fmt: skip
    pairs = pd.read_parquet(built_tiny / "pairs.parquet")
    spending = pairs.loc[pairs["topic"] == "spending", "answer"]
    time = pairs.loc[pairs["topic"] == "time", "answer"]
    assert len(spending) and spending.str.contains(r"\(bill, ").all()
    assert not spending.str.contains(r"\((?:miniprogram|spm|search|app), ").any()
    assert len(time) and time.str.contains("seconds in total").all()
