"""Prometheus metrics of the prefix KV cache, exposed on the service's ``/metrics``.

    metrics = CacheMetrics(prometheus_client)      # in a BentoML service
    metrics.update(cache.stats(), invalidated=3)

``factory`` is any module with prometheus_client's ``Counter``/``Gauge`` classes: the service
passes ``prometheus_client`` itself, imported in the worker after BentoML set up its
multiprocess directory, so the values reach BentoML's ``/metrics`` (BentoML 1.4 deprecates its
``bentoml.metrics`` wrapper for this); tests may pass one bound to a private registry. The cache keeps running
totals; the counters advance by the difference since the last update. Exposed as
``qanchor_prefix_cache_{hits,misses,evictions,invalidations}_total`` and the gauges
``qanchor_prefix_cache_{bytes,entries,max_bytes}``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

COUNTERS = {
    "hits": "prefix KV cache lookups that found the user's prefix",
    "misses": "prefix KV cache lookups that had to compute the prefix",
    "evictions": "prefixes dropped to stay under the byte bound (LRU)",
    "invalidations": "prefixes dropped because the user's features or the model changed",
}
GAUGES = {
    "bytes": "bytes held by the prefix KV cache",
    "entries": "prefixes held by the prefix KV cache",
    "max_bytes": "the prefix KV cache's byte bound",
}
PREFIX = "qanchor_prefix_cache_"

# One set of instruments per process and factory: Prometheus refuses to register a name twice.
_INSTRUMENTS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


class CacheMetrics:
    """Counters and gauges mirroring one :class:`~qanchor.infer.prefix_cache.PrefixCache`.

    Args:
        factory: see the module docstring; the instruments are created on first use.
    """

    def __init__(self, factory: ModuleType) -> None:
        if id(factory) not in _INSTRUMENTS:
            counters = {k: factory.Counter(PREFIX + k, doc) for k, doc in COUNTERS.items()}
            # livesum: with several worker processes the exposed value is their sum.
            gauges = {
                k: factory.Gauge(PREFIX + k, doc, multiprocess_mode="livesum")
                for k, doc in GAUGES.items()
            }
            _INSTRUMENTS[id(factory)] = (counters, gauges)
        self.counters, self.gauges = _INSTRUMENTS[id(factory)]
        self._seen = dict.fromkeys(COUNTERS, 0)  # this cache's totals at the last update

    def update(self, stats: dict[str, int], invalidated: int = 0) -> None:
        """Advance the counters to the cache's totals (plus ``invalidated``); set the gauges."""
        totals = {**{k: stats[k] for k in ("hits", "misses", "evictions")}, "invalidations": 0}
        totals["invalidations"] = self._seen["invalidations"] + invalidated
        for name, total in totals.items():
            delta = total - self._seen[name]
            if delta > 0:
                self.counters[name].inc(delta)
            self._seen[name] = total
        for name in GAUGES:
            self.gauges[name].set(stats[name])
