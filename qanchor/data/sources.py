"""``sources.yaml``: what each event source is and what its ``value`` means (DESIGN.md section 3).

The file is optional. It maps a source name to its spec; every key is optional::

    rating:
      description: a movie the user rated, with its release year and genres
      value: rating        # amount | rating | duration | count | none (the default)
      scale: [1, 5]        # rating only
    bill:
      description: payments
      value: amount
      currency: CNY        # amount only
    session:
      value: duration
      unit: minutes        # duration only

Pair templates word each source by its kind. A source without an entry, or a dataset without the
file, gets the neutral kind ``none``: a value of unknown meaning, never called money.

Example::

    specs = read_sources(Path("data/toy/sources.yaml"))  # {} when the file is absent
    spec_for(specs, "bill").value  # "amount"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanchor.data.contract import load_yaml
from qanchor.errors import ContractError

VALUE_KINDS = ("amount", "rating", "duration", "count", "none")
SOURCE_KEYS = ("description", "value", "currency", "scale", "unit")
# Keys that qualify one value kind only: a currency on a rating is a mistake worth naming.
KIND_KEYS = {"currency": "amount", "scale": "rating", "unit": "duration"}


@dataclass(frozen=True)
class SourceSpec:
    """What one event source is and what its events' ``value`` means.

    Attributes:
        name: The source, as in the ``source`` column of ``events.parquet``.
        description: Free text saying what one event of the source is.
        value: One of :data:`VALUE_KINDS`; ``none`` means "unknown or meaningless".
        currency: Currency of an ``amount`` (e.g. "CNY"), or "".
        scale: (low, high) of a ``rating``, or None.
        unit: Unit of a ``duration`` (e.g. "minutes"), or "".
    """

    name: str
    description: str = ""
    value: str = "none"
    currency: str = ""
    scale: tuple[float, float] | None = None
    unit: str = ""

    def as_entry(self) -> dict[str, Any]:
        """The ``sources.yaml`` entry: ``value`` always, other keys only when set."""
        entry: dict[str, Any] = {"description": self.description} if self.description else {}
        entry["value"] = self.value
        if self.currency:
            entry["currency"] = self.currency
        if self.scale is not None:
            entry["scale"] = [int(x) if float(x).is_integer() else x for x in self.scale]
        if self.unit:
            entry["unit"] = self.unit
        return entry


def spec_for(specs: dict[str, SourceSpec], name: str) -> SourceSpec:
    """The spec of source ``name``: its entry, or the neutral default without one."""
    return specs.get(name) or SourceSpec(name)


def read_sources(path: Path) -> dict[str, SourceSpec]:
    """Read and validate ``sources.yaml``.

    Args:
        path: The YAML file; it may be absent (no source has a declared meaning then).

    Returns:
        Source name -> spec, in file order; empty if the file is absent or empty.

    Raises:
        ContractError: The file is unreadable, not YAML, or breaks the format above; the
            message names the file, the key and the entry.
    """
    path = Path(path)
    file = path.name
    data = load_yaml(path, required=False)
    if data is None or data == {}:
        return {}
    if not isinstance(data, dict):
        hint = " (write one key per source, not a list)" if isinstance(data, list) else ""
        got = f"got a {type(data).__name__}{hint}"
        raise ContractError(file, f"must be a mapping from source name to its spec, {got}")
    return {str(name): _parse_entry(file, name, entry) for name, entry in data.items()}


def write_sources(specs: Iterable[SourceSpec], path: Path) -> None:
    """Write specs as ``sources.yaml``, in the given order."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    # Lists in flow style, so a scale reads "scale: [1, 5]" as people write it.
    Dumper.add_representer(
        list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
    )
    entries = {s.name: s.as_entry() for s in specs}
    text = yaml.dump(entries, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    Path(path).write_text(text, encoding="utf-8")


def _parse_entry(file: str, name: Any, entry: Any) -> SourceSpec:
    """Turn one source's entry into a SourceSpec, or raise naming the source."""
    where = f"    source {name!r}: {entry!r}"[:200]
    if not isinstance(name, str) or not name.strip():
        raise ContractError(
            file, f"source names must be non-empty strings, got {name!r}", rows=where
        )
    if entry is None:  # "search:" with nothing under it: listed, meaning unknown
        entry = {}
    if not isinstance(entry, dict):
        got = f"got a {type(entry).__name__}"
        raise ContractError(file, f"a source's spec must be a mapping of keys, {got}", rows=where)
    unknown = sorted(str(k) for k in entry if k not in SOURCE_KEYS)
    if unknown:
        raise ContractError(
            file, f"unknown key(s) {unknown}; allowed keys: {list(SOURCE_KEYS)}", rows=where
        )
    for key in ("description", "value", "currency", "unit"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ContractError(
                file, f"must be a string, got {type(entry[key]).__name__}", column=key, rows=where
            )
    kind = (entry.get("value") or "none").strip()
    if kind not in VALUE_KINDS:
        message = f"unknown value kind {kind!r}; use one of {list(VALUE_KINDS)}"
        raise ContractError(file, message, column="value", rows=where)
    for key, owner in KIND_KEYS.items():
        if entry.get(key) is not None and kind != owner:
            raise ContractError(
                file, f"'{key}' applies only to value: {owner}, not {kind}", column=key, rows=where
            )
    return SourceSpec(
        name=name,
        description=(entry.get("description") or "").strip(),
        value=kind,
        currency=(entry.get("currency") or "").strip(),
        scale=_scale(file, entry.get("scale"), where),
        unit=(entry.get("unit") or "").strip(),
    )


def _scale(file: str, raw: Any, where: str) -> tuple[float, float] | None:
    """A rating scale ``[low, high]`` as floats, or None when not given."""
    if raw is None:
        return None
    # bool is an int subclass, but `scale: [true, false]` is surely a typo.
    numbers = isinstance(raw, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in raw
    )
    if not numbers or len(raw) != 2:
        raise ContractError(
            file, f"must be two numbers [low, high], got {raw!r}", column="scale", rows=where
        )
    low, high = float(raw[0]), float(raw[1])
    if not low < high:
        raise ContractError(
            file, f"low must be below high, got [{raw[0]}, {raw[1]}]", column="scale", rows=where
        )
    return low, high
