"""The qanchor models' features for evaluation: tuned and base embeddings in one streamed pass.

got = qanchor_features(Path("runs/model"), BuiltData.load("data/built"), scenarios)
got.tuned["cash_loan_default"]  # users x dims frame, probed like any baseline's features
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class QAnchorFeatures:
    """What :func:`qanchor_features` computed: per-scenario frames (users x dims) and facts."""

    tuned: dict[str, pd.DataFrame]
    base: dict[str, pd.DataFrame] | None
    times: dict
    feature_versions: dict[str, str]  # user -> version of the features embedded
    model_version: str
    adapted: list[str]  # the scenarios embedded with a tuning adapter
    bf16: bool  # whether the passes ran under bf16 autocast

    def write_tuned(self, out_dir: Path) -> Path:
        """Write the adapted scenarios' tuned vectors in the batch-embedding schema, for the
        embed stage to reuse (:func:`qanchor.infer.shards.reusable`); returns the file."""
        from qanchor.infer.shards import vectors_file, write_embeddings

        path = Path(out_dir) / vectors_file(self.bf16)
        users = list(self.tuned[self.adapted[0]].index) if self.adapted else []
        vecs = np.stack([self.tuned[s].to_numpy() for s in self.adapted], axis=1) if users else []
        write_embeddings(path, users, self.adapted, vecs, self.feature_versions,
                         self.model_version)  # fmt: skip
        return path


def qanchor_features(
    model_dir: Path,
    data,
    scenarios: list,
    bf16: str = "off",
    base: bool = True,
    chunk: int = 128,
    users: list[str] | None = None,
    reuse: list[Path] = (),
) -> QAnchorFeatures:
    """Per-scenario embedding frames with the tuned prompts and (``base``) without, and timings.

    ``users``: whom to embed (default: every user of the build).

    Both models read the same prefix: each user's prefix is computed once and every tuned and
    bare suffix runs on it, in blocks of users that are dropped once embedded, so time is linear
    and memory flat in users (no prefix cache: nothing is embedded twice). The (user, suffix)
    pairs ``reuse`` holds (:func:`qanchor.infer.pair_store.read_pairs`) are not embedded again;
    a user missing only some suffixes runs those alone. A scenario's bag head
    (:mod:`qanchor.tune.bag_head`) shifts its tuned vectors after they are computed or read.

    A scenario the model has no adapter for is embedded with its query alone in both (never
    with its name, which is an identifier, not a question).
    """
    from qanchor.infer.engine import Embedder

    emb = Embedder.from_dir(model_dir, bf16=bf16)
    users = sorted(set(data.users["user_id"] if users is None else users))
    emb.load_users(data.snapshots[data.snapshots["user_id"].isin(users)], data.profiles)
    rows = emb.rows(users)
    tuned, wanted = _wanted(emb, scenarios, base)
    # A scenario whose adapter kept no prompt (tuning's validation guard) has the same suffix
    # tuned and untuned: run each distinct suffix once.
    suffixes, column = _distinct(wanted)
    t0 = time.perf_counter()
    vecs, known = _known(reuse, model_dir, emb, users, suffixes)
    desc = "embed qanchor_tuned" + (" + qanchor_base" if base else "")
    computed = _fill(emb, vecs, known, rows, suffixes, chunk, desc)
    vecs = vecs[:, column]
    headed = _apply_heads(emb, tuned, users, rows, vecs)
    lay, inputs = emb.model.layout, emb.users.table.inputs
    times = {"qanchor_embed_s": round(time.perf_counter() - t0, 1),
             "prefixes_computed": computed,
             "prefix_tokens_max": max((len(lay.prefix(inputs[r]).ids) for r in rows), default=0)}  # fmt: skip
    if reuse:
        times["pairs_reused_from_tuning"] = f"{int(known.sum()):,} of {known.size:,}"
    idx = pd.Index(users, name="user_id")

    def frames(x) -> dict[str, pd.DataFrame]:
        return {s.name: pd.DataFrame(x[:, j], index=idx) for j, s in enumerate(scenarios)}

    n = len(scenarios)
    times["bare_query_scenarios"] = [s.name for s in scenarios if s.name not in emb.adapters]
    times["bag_head_scenarios"] = [s.name for s, h in zip(scenarios, headed, strict=True) if h]
    return QAnchorFeatures(
        frames(vecs[:, :n]), frames(vecs[:, n:]) if base else None, times,
        emb.feature_versions(), emb.model_version,
        [s.name for s in scenarios if s.name in emb.adapters], emb.engine.bf16,
    )  # fmt: skip


def _wanted(emb, scenarios: list, base: bool) -> tuple[list, list]:
    """Each scenario's adapter suffix (None: none) and the raw suffixes to embed: tuned ones
    (query + prompt, no bag head: the pairs tuning stored are raw) then, if ``base``, bare."""
    from qanchor.infer.engine import Suffix

    tuned = [emb.adapters.get(s.name) for s in scenarios]
    queries = [a.query if a else s.query for a, s in zip(tuned, scenarios, strict=True)]
    wanted = [Suffix(q, a.prompt if a else None) for a, q in zip(tuned, queries, strict=True)]
    return tuned, wanted + ([Suffix(q) for q in queries] if base else [])


def _apply_heads(
    emb, tuned: list, users: list[str], rows: list[int], vecs: np.ndarray
) -> list[bool]:
    """Shift the tuned columns of ``vecs`` [users, columns, d] by their scenarios' bag heads;
    returns which columns had one."""
    head_inputs = [emb.users.table.inputs[r].head_input() for r in rows]
    headed = [a is not None and a.head is not None for a in tuned]
    for j, a in enumerate(tuned):
        if headed[j]:
            vecs[:, j] = a.head.shifted(vecs[:, j], users, head_inputs)
    return headed


def _known(reuse: list[Path], model_dir: Path, emb, users: list[str], suffixes: list):
    """``(vectors [users, suffixes, d], known [users, suffixes])``: what ``reuse`` holds for this
    model, precision and these users' features, in an array the new vectors fill."""
    from qanchor.infer import pair_store

    shape = (len(users), len(suffixes))
    vecs, known = np.zeros((*shape, emb.model.cfg.emb_dim), np.float32), np.zeros(shape, bool)
    if reuse:
        key = pair_store.model_key(model_dir, emb.engine.bf16)
        got, known = pair_store.read_pairs(reuse, users, suffixes, emb.feature_versions(), key)
        vecs = got if known.any() else vecs
    return vecs, known


def _fill(emb, vecs: np.ndarray, known: np.ndarray, rows: list[int], suffixes: list, chunk: int,
          desc: str) -> int:  # fmt: skip
    """Embed the pairs not ``known`` into ``vecs``, users grouped by the suffixes they miss (all
    of them for users no earlier stage embedded); returns the prefixes computed."""
    from qanchor.infer.engine import embed_rows_shown

    groups: dict[tuple, list[int]] = {}
    for i, missing in enumerate(~known):
        if missing.any():
            groups.setdefault(tuple(np.flatnonzero(missing)), []).append(i)
    for missing, who in groups.items():
        got = embed_rows_shown(
            emb,
            [rows[i] for i in who],
            [suffixes[j] for j in missing],
            desc,
            chunk,
            use_cache=False,
        )
        vecs[np.ix_(who, missing)] = got
    return sum(len(who) for who in groups.values())


def _distinct(suffixes: list) -> tuple[list, list[int]]:
    """The distinct suffixes (query, prompt values) and each input's index among them."""
    from qanchor.infer.pair_store import suffix_digest

    seen: dict[str, int] = {}
    distinct, column = [], []
    for sfx in suffixes:
        key = suffix_digest(sfx)
        if key not in seen:
            seen[key] = len(distinct)
            distinct.append(sfx)
        column.append(seen[key])
    return distinct, column
