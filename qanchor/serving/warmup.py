"""Warm-up: one real request's whole path, run before the service reports ready.

    warmed = warm_up(served_model, store_cfg)     # WarmUp(version, user, known, column, seconds)
    warmer = Warmer(retry_seconds=10.0)           # the service's: failures, retries, the last one
    warmer.run(served_model, store_cfg); warmer.refusal   # None, or why the service is not ready

A fresh process pays on its first request for everything it has not done yet: importing Feast
(seconds on a 2-core machine), opening the store and its registry, the first online read,
importing scikit-learn for the whole-history bag's TF-IDF, loading the event-vector cache and
torch's first prefix and suffix passes. The first /embed of a fresh ``small`` service took 8 s
against 0.1 s for the next ones (``benchmarks/service_start.py``). :func:`warm_up` pays all of
it before /readyz is 200: it reads one user from the online store (the first user of the
store's build) and embeds it for one scenario with :func:`~qanchor.serving.jobs.embed_jobs`,
the code a request's batch runs.

The warm-up's prefix goes to a scratch cache: the served prefix cache and its counters start
empty, as if no request had come. A store that does not know that user (or a build that lists
none) still gets its read; the model is then warmed on a synthetic user with one event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.features.config import FeatureStoreConfig
from qanchor.features.feast_store import UserFeatures
from qanchor.infer.anchor import AnchorEngine
from qanchor.infer.prefix_cache import PrefixCache
from qanchor.serving.jobs import EmbedJob, embed_jobs
from qanchor.serving.model import ServedModel
from qanchor.serving.users import RequestUsers

log = logging.getLogger(__name__)

PLACEHOLDER = "__qanchor_warm_up__"  # read when the build lists no user: the read still warms
WARM_QUERY = "What will this user do next?"  # the column of a model without scenarios
SYNTHETIC_TEXT = "qanchor warm-up event"
Lock = AbstractContextManager | None  # the service's lock over the store (None: no other user)


@dataclass(frozen=True)
class WarmUp:
    """What a warm-up did: the model version, the user read, whether the store knew it (else
    the model ran on a synthetic user), the column embedded and the seconds it all took."""

    version: str
    precision: str
    user: str
    known: bool
    column: str
    seconds: float

    def describe(self) -> str:
        what = "it" if self.known else "a synthetic user (the store does not know it)"
        return (f"warmed up {self.version} ({self.precision}) in {self.seconds:.2f} s: read "
                f"{self.user} from the store, embedded {what} for {self.column!r}")  # fmt: skip


class Warmer:
    """A service's warm-ups: the last one, why the last one failed, and retries of it.

    Args:
        retry_seconds: after a failure, :meth:`retry` starts another warm-up at most this often.
    """

    def __init__(self, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self.last: WarmUp | None = None
        self.refusal: str | None = None  # why the last warm-up failed: the service is not ready
        self._tried, self._thread = 0.0, None
        self._guard = threading.Lock()  # readiness probes may come on several threads

    def run(
        self, model: ServedModel, store: FeatureStoreConfig, lock: Lock = None
    ) -> WarmUp | None:
        """Warm the served ``model`` up; a failure is logged and becomes :attr:`refusal`."""
        self._tried = time.monotonic()
        try:
            return self._done(warm_up(model, store, lock))
        except Exception as exc:
            log.exception("warm-up of %s failed: not ready", model.version)
            self.refusal = (f"warm-up failed (retried every {self.retry_seconds:g} s): "
                            f"{type(exc).__name__}: {exc}")  # fmt: skip
            return None

    def candidate(
        self, model: ServedModel, store: FeatureStoreConfig, lock: Lock = None
    ) -> WarmUp | None:
        """Warm up a model about to be swapped in; a failure is logged (the caller keeps the
        model it serves) and leaves :attr:`refusal` as it was."""
        try:
            return self._done(warm_up(model, store, lock))
        except Exception:
            log.exception("not swapping to %s: its warm-up failed", model.version)
            return None

    def _done(self, warmed: WarmUp) -> WarmUp:
        log.info("%s", warmed.describe())
        self.last, self.refusal = warmed, None
        return warmed

    def retry(self, again: Callable[[], object]) -> None:
        """After a failed warm-up, call ``again`` in a background thread: one at a time, at most
        every ``retry_seconds``; a store that comes up later makes the service ready."""
        with self._guard:
            busy = self._thread is not None and self._thread.is_alive()
            due = time.monotonic() - self._tried >= self.retry_seconds
            if self.refusal and due and not busy:
                self._tried = time.monotonic()
                self._thread = threading.Thread(target=again, name="warm-up", daemon=True)
                self._thread.start()


def warm_up(
    model: ServedModel, store: FeatureStoreConfig, lock: Lock = None, user: str | None = None
) -> WarmUp:
    """Read ``user`` (default: the first user of the store's build) from ``store``, holding
    ``lock`` (which guards the store), and embed it with ``model`` through the request path.
    Raises whatever the read or the model raises."""
    t0 = time.perf_counter()
    user = user or first_user(store) or PLACEHOLDER
    with lock or nullcontext():
        users = RequestUsers.read(store, [user])
    known = user in users.known
    if not known:
        users = synthetic(users, user, model.embedder.model.cfg.sources[0])
    name = model.names[0] if model.names else None
    job = EmbedJob((user,), (name,) if name else (), () if name else (WARM_QUERY,))
    with scratch_cache(model.embedder.engine):
        embed_jobs(model, users, [job])
    precision = "bf16" if model.embedder.engine.bf16 else "fp32"
    seconds = time.perf_counter() - t0
    return WarmUp(model.version, precision, user, known, name or WARM_QUERY, seconds)


def first_user(store: FeatureStoreConfig) -> str | None:
    """The first user of the store's build (``users.parquet``), None if it lists none."""
    import pyarrow.parquet as pq

    path = Path(store.data) / "users.parquet"
    if not path.is_file():
        return None
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=["user_id"]), None)
    return None if batch is None or not batch.num_rows else str(batch.column(0)[0])


def synthetic(users: RequestUsers, user: str, source: str) -> RequestUsers:
    """``users`` (the store's empty row of ``user``) with one event and bag entry of ``source``:
    a model input that runs every pass a real user does (an empty history has no event)."""
    now = pd.Timestamp.now(tz="UTC")
    ts = [np.array([now.tz_localize(None)], dtype="datetime64[us]")]

    def one(value: object, dtype: object = object) -> list[np.ndarray]:
        return [np.array([value], dtype=dtype)]

    snaps = users.features.snapshots.assign(
        snapshot_ts=now, event_source=one(source), event_ts=ts, event_text=one(SYNTHETIC_TEXT),
        event_value=one(1.0, np.float64), bag_source=one(source), bag_text=one(SYNTHETIC_TEXT),
        bag_count=one(1, np.int64), bag_last_ts=ts,
    )  # fmt: skip
    feats = UserFeatures(snaps, users.features.profiles, users.features.aggregates)
    return RequestUsers(feats, {user: "warm-up"}, {user})


@contextmanager
def scratch_cache(engine: AnchorEngine) -> Iterator[None]:
    """``engine`` with an empty prefix cache of the same bound, its own restored afterwards:
    the warm-up's prefix is neither served later nor counted in the cache's metrics."""
    shared = engine.cache
    engine.cache = PrefixCache(shared.max_bytes)
    try:
        yield
    finally:
        engine.cache = shared
