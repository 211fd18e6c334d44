"""The embedding service's logic, independent of the HTTP framework.

    svc = EmbeddingService(ServingConfig.from_env(), metrics=prometheus_client)
    svc.embed("u000042", scenario="cash_loan_default")          # -> EmbedResult
    svc.embed_batch(["u1", "u2"], ["cash_loan_default"], ["Will they travel?"])
    svc.explain("u000042", query="What does this user do?")
    svc.push([PushEvent(...)])                                    # new events; stale prefixes go

Per request the users' features are read from the Feast online store, so a user's latest
pushed events are always what is embedded. Each user's prefix KV state is cached across requests
in a byte-bounded LRU keyed by (user, feature version, model version): changed features or a
new model can never hit an old entry, and pushes through :meth:`push` (or a model swap) drop the
superseded entries at once. Embedding requests are validated in the caller's thread and then
merged with concurrent ones by an :class:`AdaptiveBatcher`; one worker thread owns the model.
Before it reports ready the service warms itself up (:mod:`qanchor.serving.warmup`): one user
read from the store and embedded through the request path, so that its first request pays for
no lazy import, store connection or first forward pass. Unless a version is pinned, the
promoted version is checked every ``reload_seconds``; a newly promoted model is loaded and
warmed up by a background thread *beside* the serving one (requests go on being answered by the
old model meanwhile) and swapped in between two batches, so a batch in flight finishes on the
model it started with and no request waits for a model load.
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType

from qanchor.infer.prefix_cache import PrefixCache
from qanchor.serving.batcher import AdaptiveBatcher
from qanchor.serving.config import ServingConfig
from qanchor.serving.jobs import EmbedJob, embed_jobs, job_errors, unknown_users
from qanchor.serving.model import ServedModel
from qanchor.serving.schemas import (
    BadRequest,
    BatchResult,
    EmbedResult,
    Explanation,
    NotServing,
    PushEvent,
    PushResult,
    ScenarioList,
    TooLarge,
)
from qanchor.serving.users import RequestUsers
from qanchor.serving.warmup import Warmer, WarmUp

log = logging.getLogger(__name__)


class EmbeddingService:
    """Loads the served model and answers embed, embed_batch, explain, scenarios and push."""

    def __init__(self, cfg: ServingConfig, metrics: ModuleType | None = None) -> None:
        from qanchor.serving.metrics import CacheMetrics

        self.cfg, self.store = cfg, cfg.features
        self.cache = PrefixCache(cfg.cache_bytes)
        self.model = ServedModel.load(cfg, self.cache)
        # The model cannot serve this store's features (None: it can); see refusal.
        self.spec_refusal: str | None = self.model.spec_problem(self.store)
        if self.spec_refusal:
            log.error("not serving: %s", self.spec_refusal)
        self.warm = Warmer(cfg.warm_retry_seconds)
        self.metrics = CacheMetrics(metrics) if metrics is not None else None
        self._lock = threading.RLock()  # the model and the feature store: one user at a time
        self._checked = time.monotonic()
        self._loader: threading.Thread | None = None  # a background load of a promoted version
        self.batcher = AdaptiveBatcher(
            self._run, cfg.max_batch_pairs, cfg.batch_wait_ms / 1000, size=lambda job: job.pairs
        )
        self._update_metrics()
        if self.spec_refusal is None:
            self.warm_up()

    # --- API ------------------------------------------------------------------------------
    def scenarios(self) -> ScenarioList:
        return ScenarioList(model_version=self.model.version, scenarios=self.model.scenarios)

    def embed(
        self, user_id: str, scenario: str | None = None, query: str | None = None
    ) -> EmbedResult:
        """One user's vector for a scenario name or a free-text query (exactly one of them)."""
        if (scenario is None) == (query is None):
            raise BadRequest("give exactly one of 'scenario' (a name) or 'query' (free text)")
        names, queries = ([scenario], []) if scenario is not None else ([], [query])
        got = self.embed_batch([user_id], names, queries)
        return EmbedResult(
            user_id=user_id,
            scenario=scenario,
            query=self.model.query_of(scenario, query),
            vector=got.vectors[0][0],
            model_version=got.model_version,
            feature_version=got.feature_versions[0],
            prefix_cached=got.prefix_cached[0],
        )

    def embed_batch(
        self,
        user_ids: list[str],
        scenarios: list[str] | None = None,
        queries: list[str] | None = None,
    ) -> BatchResult:
        """Users x (scenarios, then queries), merged with concurrent requests into one batch."""
        job = EmbedJob(tuple(user_ids), tuple(scenarios or ()), tuple(queries or ()))
        if not job.pairs:
            raise BadRequest("nothing to embed: give user_ids and at least one scenario or query")
        if job.pairs > self.cfg.max_batch_pairs:
            raise TooLarge(
                f"{job.pairs} (user, scenario) pairs; the limit is {self.cfg.max_batch_pairs}",
                limit=self.cfg.max_batch_pairs,
            )
        self.model.check(list(job.names))  # fail fast; rechecked in the batch (a model swap)
        return self.batcher.submit(job)

    def explain(
        self,
        user_id: str,
        scenario: str | None = None,
        query: str | None = None,
        max_tokens: int = 32,
    ) -> Explanation:
        """A short description of the user for a scenario's query or a free-text query."""
        from qanchor.infer.explain import explain

        if (scenario is None) == (query is None):
            raise BadRequest("give exactly one of 'scenario' (a name) or 'query' (free text)")
        with self._lock:
            self._maybe_reload()
            self._refuse()
            text = self.model.query_of(scenario, query)
            users = self._read([user_id], strict=True)
            inputs = users.inputs(self.model.embedder, [user_id])
            n = min(max_tokens, self.cfg.explain_tokens)
            out = explain(self.model.embedder.engine, inputs, user_id, text, n)
            self._update_metrics()
            return Explanation(
                user_id=user_id,
                query=text,
                text=out,
                model_version=self.model.version,
                feature_version=users.versions[user_id],
                prefix_cached=inputs.cached(user_id),
            )

    def push(self, events: list[PushEvent], create: bool = False) -> PushResult:
        """Append new events to users' online histories; drop their now stale cached prefixes.

        Unknown users are a 404 unless ``create``; events dated after now + 5 minutes a 400.
        """
        import pandas as pd

        from qanchor.features import push as P

        self._refuse()

        if len(events) > self.cfg.push_max_events:
            raise TooLarge(
                f"{len(events)} events; the limit is {self.cfg.push_max_events}",
                limit=self.cfg.push_max_events,
            )
        if not events:
            return PushResult(events=0, stale=[], versions={}, invalidated=0)
        frame = pd.DataFrame([e.model_dump() for e in events])
        frame["ts"] = _utc_times(frame["ts"])
        dropped = []
        with self._lock:
            invalidate = P.prefix_invalidator(self.cache)
            hook = lambda users: dropped.append(invalidate(users))  # noqa: E731 - counts drops
            try:
                res = P.push_events(self.store, frame, on_stale=[hook], create=create)
            except P.UnknownUsersError as exc:
                raise unknown_users(exc.users) from exc
            except P.FutureEventsError as exc:
                raise BadRequest(str(exc)) from exc
            self._update_metrics(invalidated=sum(dropped))
        return PushResult(
            events=res.events,
            stale=sorted(res.stale),
            versions=res.versions,
            invalidated=sum(dropped),
        )

    @property
    def refusal(self) -> str | None:
        """Why the service refuses to serve (None: it serves); /readyz stays 503 while set."""
        return self.spec_refusal or self.warm.refusal

    def ready(self) -> bool:
        self.warm.retry(self.warm_up)
        return self.model is not None and self.refusal is None

    def warm_up(self) -> WarmUp | None:
        """Read one user from the store and embed it through the request path, so that lazy
        imports, the store's connection and the first passes are paid before ready, not by the
        first request (:mod:`qanchor.serving.warmup`). A failure (a store it cannot read, say)
        is logged and keeps the service unready with the reason; :meth:`ready` retries it."""
        return self.warm.run(self.model, self.store, self._lock)

    def _refuse(self) -> None:
        if self.refusal:
            raise NotServing(self.refusal)

    # --- the batch worker -----------------------------------------------------------------
    def _run(self, jobs: list[EmbedJob]) -> list[BatchResult | Exception]:
        """Embed a batch of jobs: one feature read, each prefix once, all pairs batched together."""
        with self._lock:
            self._maybe_reload()
            if self.refusal:
                self.warm.retry(self.warm_up)
                return [NotServing(self.refusal)] * len(jobs)
            users = self._read([u for j in jobs for u in j.user_ids])
            out: list[BatchResult | Exception | None] = job_errors(self.model, users, jobs)
            ok = [i for i, o in enumerate(out) if o is None]
            if ok:
                results = embed_jobs(self.model, users, [jobs[i] for i in ok])
                for i, res in zip(ok, results, strict=True):
                    out[i] = res
            self._update_metrics()
            return out

    def _read(self, user_ids: list[str], strict: bool = False) -> RequestUsers:
        """The users' online features; with ``strict`` an unknown user is a 404 right away."""
        users = RequestUsers.read(self.store, user_ids)
        if strict and (missing := users.unknown(user_ids)):
            raise unknown_users(missing)
        return users

    # --- model swaps and metrics ----------------------------------------------------------
    def reload(self, tag: str | None = None) -> bool:
        """Serve ``tag`` (default: the promoted version) if it is not served yet; True if swapped.

        The new model is loaded without the request lock (requests keep being served by the
        current model); only the swap itself takes the lock, between two batches.
        """
        from qanchor import registry

        version = registry.get(tag) if tag else registry.promoted(self.cfg.model_name)
        if version is None or version.tag == self.model.version:
            return False
        new = ServedModel.load(self.cfg, self.cache, tag=version.tag)
        if problem := new.spec_problem(self.store):
            # Keep serving the current model rather than feed the new one rows it never saw.
            log.error("not swapping to %s: %s", new.version, problem)
            return False
        # Warmed beside the serving model: the first requests it answers pay no first passes.
        if self.warm.candidate(new, self.store, self._lock) is None:
            return False
        with self._lock:
            self._swap(new)
            self.spec_refusal = None
        return True

    def _swap(self, new: ServedModel) -> None:
        """Serve ``new`` from the next batch on and drop the cache entries of every other model."""
        self.model = new
        current = new.embedder.model_version
        dropped = self.cache.invalidate(lambda key: key[2] != current)
        log.info("now serving %s (dropped %d cached prefixes)", new.version, dropped)
        self._update_metrics(invalidated=dropped)

    def _maybe_reload(self) -> None:
        """Every ``reload_seconds`` (unless a version is pinned) start a background check-and-load
        of the promoted version; never blocks the batch that calls it."""
        if self.cfg.model_tag or self.cfg.reload_seconds <= 0:
            return
        busy = self._loader is not None and self._loader.is_alive()
        if busy or time.monotonic() - self._checked < self.cfg.reload_seconds:
            return
        self._checked = time.monotonic()
        self._loader = threading.Thread(
            target=self._reload_quietly, name="model-loader", daemon=True
        )
        self._loader.start()

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except Exception:  # a broken store or pointer must not fail requests: keep serving
            log.exception(
                "could not check or load the promoted model; serving %s", self.model.version
            )

    def _update_metrics(self, invalidated: int = 0) -> None:
        if self.metrics is not None:
            self.metrics.update(self.cache.stats(), invalidated)


def _utc_times(values) -> object:  # noqa: ANN001
    """Event times as UTC timestamps; one outside pandas' range (years 1677-2262) is a 400."""
    import pandas as pd

    try:
        return pd.to_datetime(values, utc=True)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise BadRequest(f"an event time is out of range: {exc}") from exc
