"""Multiple-comparison corrections within a declared family (Bonferroni, Holm, BH)."""
from __future__ import annotations

import numpy as np

from emocheck.stats._common import ADJUST_METHODS




def adjust_pvalues(pvalues, method: str = "holm", *, n_tests: int | None = None) -> np.ndarray:
    """Adjust p-values for multiple comparisons; returns an array the shape of ``pvalues``.

    methods: 'bonferroni' (min(1, m p)), 'holm' (step-down, FWER), 'bh' (Benjamini-Hochberg
    step-up, FDR), 'none' (unchanged copy). Reject a hypothesis when its adjusted p <= the level.

    NaN entries stay NaN and are not counted in the family size m (a claim that produced no
    p-value is not a test). Values outside [0, 1] raise ValueError.

    ``n_tests``: the size m of the whole family when only some of its members were run (e.g. a
    ``-k`` selection). The len(pvalues) - (#NaN) values present are adjusted as if the other
    n_tests - (#present) members had p = 1 -- the most conservative assumption -- so running a
    subset never makes a claim easier to pass. NaN entries therefore count as not-run members
    when ``n_tests`` is given. ``n_tests < len(pvalues)`` raises ValueError.
    """
    if method not in ADJUST_METHODS:
        raise ValueError(f"method must be one of {ADJUST_METHODS}, got {method!r}")
    p = np.asarray(pvalues, dtype=float)
    shape = p.shape
    p = p.ravel()
    if n_tests is not None:
        if int(n_tests) != n_tests or n_tests < p.size:
            raise ValueError(
                f"n_tests ({n_tests}) must be an integer >= the number of p-values ({p.size})"
            )
    ok = ~np.isnan(p)
    pv = p[ok]
    if np.any((pv < 0) | (pv > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {pv[(pv < 0) | (pv > 1)][:5]}")
    out = np.full(p.shape, np.nan)
    if method == "none" or pv.size == 0:
        out[ok] = pv
        return out.reshape(shape)
    m = pv.size if n_tests is None else int(n_tests)
    # Pad with p = 1 for the members not run; they sort last, so they only enlarge m.
    full = np.concatenate([pv, np.ones(m - pv.size)])
    if method == "bonferroni":
        adj = np.minimum(1.0, m * full)
    else:
        order = np.argsort(full, kind="mergesort")  # stable: ties keep input order
        ranked = full[order]
        i = np.arange(1, m + 1)
        if method == "holm":
            # adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))
            adj_sorted = np.maximum.accumulate(np.minimum(1.0, (m - i + 1) * ranked))
        else:  # bh
            # adj_(i) = min_{j >= i} min(1, m p_(j) / j)
            adj_sorted = np.minimum.accumulate((m * ranked / i)[::-1])[::-1]
            adj_sorted = np.minimum(1.0, adj_sorted)
        adj = np.empty(m)
        adj[order] = adj_sorted
    out[ok] = adj[: pv.size]
    return out.reshape(shape)

