"""The on-disk cache of event-text vectors: encode once, read back, map rather than load."""

from __future__ import annotations

import numpy as np

from qanchor.model.vectors import VectorCache


def fake_encoder(calls: list[list[str]]):
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)

    return encode


def test_only_new_texts_are_encoded_and_a_reopened_cache_reads_them_back(tmp_path):
    calls: list[list[str]] = []
    cache = VectorCache(tmp_path, "enc")
    first = cache.get(["ab", "c", "ab"], fake_encoder(calls))
    assert calls == [["ab", "c"]] or calls == [["c", "ab"]]  # each distinct text once
    np.testing.assert_array_equal(first, [[2, 97], [1, 99], [2, 97]])

    reopened = VectorCache(tmp_path, "enc")
    assert isinstance(reopened._vecs, np.memmap)  # mapped, not read into memory
    again = reopened.get(["c", "dd", "ab"], fake_encoder(calls))
    assert calls[-1] == ["dd"]
    np.testing.assert_array_equal(again, [[1, 99], [2, 100], [2, 97]])
    # The reopened cache saved "dd": a third reader sees all three, encoding nothing.
    third = VectorCache(tmp_path, "enc")
    n_calls = len(calls)
    np.testing.assert_array_equal(third.get(["dd", "ab"], fake_encoder(calls)), [[2, 100], [2, 97]])  # fmt: skip
    assert len(calls) == n_calls and len(third) == 3


def test_keep_false_encodes_without_growing_the_cache(tmp_path):
    calls: list[list[str]] = []
    VectorCache(tmp_path, "enc").get(["ab"], fake_encoder(calls))
    reader = VectorCache(tmp_path, "enc")
    out = reader.get(["ab", "xyz"], fake_encoder(calls), save=False, keep=False)
    np.testing.assert_array_equal(out, [[2, 97], [3, 120]])
    assert len(reader) == 1 and len(VectorCache(tmp_path, "enc")) == 1
