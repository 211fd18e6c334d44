"""Embedding jobs: one request's users x columns, and a batch of them embedded at once.

    job = EmbedJob(("u1", "u2"), ("cash_loan_default",), ("Will they travel?",))
    job_errors(served, users, [job, ...])       # per job: its own 404/400, or None
    results = embed_jobs(served, users, [job, ...])    # one BatchResult per job, in order

A batch's jobs share one set of user inputs, built for the batch alone and passed to the engine
(which keeps no user state), and one list of suffixes: every (user, column) pair of every job
runs in the engine's batches whatever job it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.serving.model import ServedModel
from qanchor.serving.schemas import BatchResult, UnknownScenario, UnknownUsers
from qanchor.serving.users import RequestUsers


@dataclass(frozen=True)
class EmbedJob:
    """Users x (scenario names, then free-text queries)."""

    user_ids: tuple[str, ...]
    names: tuple[str, ...]
    queries: tuple[str, ...]

    @property
    def pairs(self) -> int:
        return len(self.user_ids) * (len(self.names) + len(self.queries))


def job_errors(model: ServedModel, users: RequestUsers, jobs: list[EmbedJob]) -> list:
    """Per job, the error that fails it alone (404 unknown users, 400 unknown scenario) or None."""
    out: list[Exception | None] = [None] * len(jobs)
    for i, job in enumerate(jobs):
        if missing := users.unknown(list(job.user_ids)):
            out[i] = unknown_users(missing)
        else:
            try:  # a scenario the model swapped in just now lacks
                model.check(list(job.names))
            except UnknownScenario as exc:
                out[i] = exc
    return out


def embed_jobs(model: ServedModel, users: RequestUsers, jobs: list[EmbedJob]) -> list[BatchResult]:
    """Flatten the jobs' (user, column) pairs over shared user and suffix lists, embed once."""
    emb = model.embedder
    ids = list(dict.fromkeys(u for j in jobs for u in j.user_ids))
    inputs = users.inputs(emb, ids)  # this batch's own: the engine keeps no user state
    # Scenario columns first, then free text: the order ServedModel.suffixes returns.
    cols = sorted(dict.fromkeys(c for j in jobs for c in columns(j)), key=lambda c: c[0] == "q")
    sfx = model.suffixes([c[1] for c in cols if c[0] == "s"], [c[1] for c in cols if c[0] == "q"])
    at_user, at_col = {u: k for k, u in enumerate(ids)}, {c: k for k, c in enumerate(cols)}
    pairs = [(at_user[u], at_col[c]) for j in jobs for u in j.user_ids for c in columns(j)]
    vecs = emb.engine.embed_pairs(inputs, inputs.rows(ids), sfx, pairs).numpy()
    out, start = [], 0
    for job in jobs:
        n, m = len(job.user_ids), len(columns(job))
        block = vecs[start : start + n * m].reshape(n, m, -1)
        start += n * m
        out.append(BatchResult(user_ids=list(job.user_ids), columns=[*job.names, *job.queries],
                               vectors=block.tolist(), model_version=model.version,
                               feature_versions=[users.versions[u] for u in job.user_ids],
                               prefix_cached=[inputs.cached(u) for u in job.user_ids]))  # fmt: skip
    return out


def columns(job: EmbedJob) -> list[tuple[str, str]]:
    """A job's columns, tagged: a scenario name and free text that spells it stay apart."""
    return [("s", n) for n in job.names] + [("q", q) for q in job.queries]


def unknown_users(users: list[str]) -> UnknownUsers:
    return UnknownUsers(f"unknown user(s) {users[:10]}", unknown=users[:10])
