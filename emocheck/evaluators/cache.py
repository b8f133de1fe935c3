"""In-memory LRU cache of per-text scores, keyed by (evaluator fingerprint, text).

Why: phase-5/6 claims score the same continuations under several evaluators and several claims;
each text is encoded once per evaluator per process. The key includes the evaluator's fingerprint
(name, backend, model id, head hash), so scores from different instruments can never be mixed.
Values are read-only float64 rows; a hit returns the identical numbers.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

DEFAULT_MAXSIZE = int(os.environ.get("EMOCHECK_EVALUATOR_CACHE_SIZE", "200000"))


class ScoreCache:
    """Thread-safe LRU map (fingerprint, text) -> 1-D numpy row of label scores."""

    def __init__(self, maxsize: int = DEFAULT_MAXSIZE):
        self.maxsize = int(maxsize)
        self._data: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, fingerprint: str, text: str) -> np.ndarray | None:
        key = (fingerprint, text)
        with self._lock:
            row = self._data.get(key)
            if row is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return row

    def put(self, fingerprint: str, text: str, row: np.ndarray) -> None:
        if self.maxsize <= 0:
            return
        row = np.array(row, dtype=np.float64, copy=True)
        row.setflags(write=False)
        with self._lock:
            self._data[(fingerprint, text)] = row
            self._data.move_to_end((fingerprint, text))
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)


# One cache per process, shared by every evaluator (keys carry the evaluator fingerprint).
SCORE_CACHE = ScoreCache()


def clear_cache() -> None:
    SCORE_CACHE.clear()
