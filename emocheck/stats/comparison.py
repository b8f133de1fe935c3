"""The claim-level record (:class:`Comparison`), :func:`compare` for two samples, and the verdict rule.

Every function here is a plain function on array-likes; nothing depends on pytest, so the same
numbers can be reproduced in a notebook or a report. The two design-level comparisons build the
same record: :func:`emocheck.stats.directions.compare_directions` (K control directions as a
random effect, ``kind='directions'``) and :func:`emocheck.stats.nulls.compare_to_null` (an observed
statistic against null draws, ``kind='vs_null'``).

Verdict logic
-------------
A claim says "treated differs from control in direction D by at least ``min_d``" where D is one of
``ALTERNATIVES``: ``'greater'`` (treated > control, d > 0), ``'less'`` (treated < control, d < 0) or
``'two-sided'`` (either direction). :func:`compare` turns the two samples into a
:class:`Comparison`, which carries two p-values:

* ``p_value``: the test of *no effect* in the claimed direction (Welch t for independent
  samples, paired t for paired samples; one-sided unless the claim is two-sided);
* ``p_min_effect``: the test that the effect *exceeds* ``min_d`` in the claimed direction
  (:func:`min_effect_test`, a noncentral-t test of H0: d <= min_d for 'greater',
  H0: d >= -min_d for 'less', H0: |d| <= min_d for 'two-sided'; for independent groups of
  unequal size Bonett's Welch-consistent z test, :func:`min_effect_test_bonett`).

Both p-values are corrected for the family of claims that is being tested together
(:func:`adjust_pvalues`; missing family members count as p = 1 via ``n_tests``). A claim with
direction 'greater' and threshold ``min_d`` is **supported** only when

  (a) the corrected ``p_value`` < alpha, and
  (b) the corrected ``p_min_effect`` < alpha.

Without correction, (b) is equivalent to the lower bound of the one-sided (1 - alpha) confidence
interval for d (the lower end of the two-sided 1 - 2*alpha interval stored in the Comparison)
clearing ``min_d``: the analytic interval and the min-effect test invert the same noncentral t
distribution. 'less' mirrors the rule (the upper bound must lie below ``-min_d``), and 'two-sided'
uses the two-sided versions of both tests.

A third p-value, ``p_refute``, tests the opposite: that the effect is *smaller* than ``min_d`` in
the claimed direction (H0: d >= min_d for 'greater', d <= -min_d for 'less', |d| >= min_d for
'two-sided', the last by two one-sided tests; :func:`emocheck.stats.ttests.nct_refute_p`). It is
corrected within the same family by the same method; a claim whose corrected ``p_refute`` is below
alpha is **refuted** (the corrected upper bound of the effect in the claimed direction lies below
min_d: an equivalence / non-superiority test with the same error control as "supported"). A claim
that is neither supported nor refuted -- including NaN p-values -- is **inconclusive**.
:func:`verdict` implements exactly this rule.

Conventions
-----------
* d is always signed treated - control (d_z, the mean difference over the SD of the differences,
  when paired; mean / SD for one sample).
* All SDs use ddof=1. Independent samples standardise by sqrt((s_t^2 + s_c^2) / 2) (Bonett), which
  is the pooled SD when the groups have equal size.
* Seeds: every resampling function takes ``seed`` and builds its own ``np.random.Generator``, so
  results are reproducible and independent of global random state.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from emocheck.errors import EvidenceError
from emocheck.stats._common import ALTERNATIVES, CI_METHODS, _as_1d, _check_alternative, _design
from emocheck.stats.effect_sizes import bonett_ci, bonett_d, cohens_d, cohens_d_ci, hedges_correction
from emocheck.stats.ttests import (min_effect_test, min_effect_test_bonett, refute_test, refute_test_bonett,
                                   ttest)

VERDICTS = ("supported", "refuted", "inconclusive")



@dataclass(frozen=True)
class Comparison:
    """All numbers behind one claim (treated vs control). Build it with :func:`compare`.

    ``d_ci_low``/``d_ci_high``: two-sided interval at 1 - 2*alpha for one-sided alternatives (so
    the relevant end is the one-sided 1 - alpha bound) and 1 - alpha for two-sided claims.
    ``ci_method`` says how the interval and the min-effect test were computed ('analytic' =
    noncentral t, 'bonett' = Bonett's Welch-consistent interval for unequal groups, 'bootstrap',
    'nct-satterthwaite' for directions, 'null-rank' for null distributions). Planning power is
    not here: it depends on the family size and is computed by the report (``stats.power``).
    """

    n_treated: int
    n_control: int
    paired: bool
    alternative: str
    min_d: float
    alpha: float
    mean_treated: float
    mean_control: float
    mean_difference: float
    d: float
    hedges_g: float
    d_ci_low: float
    d_ci_high: float
    ci_method: str
    t: float
    df: float
    p_value: float
    p_min_effect: float
    # The test that the effect is SMALLER than min_d in the claimed direction (refutation; NaN in
    # records written before it existed, which can then never be refuted).
    p_refute: float = float("nan")
    # 'samples' (compare), 'directions' (compare_directions) or 'vs_null' (compare_to_null).
    kind: str = "samples"
    # Design-specific numbers (plain builtins), e.g. the direction rank and permutation p.
    extra: dict = field(default_factory=dict)

    @property
    def ci_confidence(self) -> float:
        """Confidence level of (d_ci_low, d_ci_high)."""
        return _ci_confidence(self.alpha, self.alternative)

    def to_dict(self) -> dict:
        """Plain builtins only (float/int/str/bool, str-keyed dicts): JSON- and xdist-safe."""
        out = {}
        for key, value in asdict(self).items():
            if key == "extra":
                out[key] = {str(k): _builtin(v) for k, v in value.items()}
            elif isinstance(value, (bool, np.bool_)):
                out[key] = bool(value)
            elif isinstance(value, (int, np.integer)):
                out[key] = int(value)
            elif isinstance(value, (float, np.floating)):
                out[key] = float(value)
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        """Inverse of :meth:`to_dict` (e.g. on the xdist controller)."""
        data = dict(data)
        data["extra"] = dict(data.get("extra") or {})
        return cls(**data)


def _builtin(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def check_settings(alternative: str, alpha: float, min_d: float) -> None:
    """ValueError for an unknown alternative, alpha outside (0, .5) one-sided / (0, 1) two-sided,
    or a min_d that is not a finite magnitude >= 0 (shared by every compare_* function)."""
    _check_alternative(alternative)
    if not 0 < alpha < (0.5 if alternative != "two-sided" else 1):
        raise ValueError(f"alpha must be in (0, 0.5) for one-sided claims / (0, 1) two-sided, got {alpha}")
    if not (np.isfinite(min_d) and min_d >= 0):
        raise ValueError(f"min_d must be a finite magnitude >= 0, got {min_d}")


def _ci_confidence(alpha: float, alternative: str) -> float:
    return 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha


def _evidence(values, name: str) -> np.ndarray:
    try:
        arr = _as_1d(values, name)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"{name}: values must be a 1-D sequence of numbers ({exc})") from None
    if arr.size < 3:
        raise EvidenceError(f"{name} has {arr.size} value(s); at least 3 are needed for a test")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad)[:5].tolist()
        raise EvidenceError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN/inf) at positions {idx}"
        )
    return arr


def compare(
    treated,
    control,
    *,
    paired: bool = False,
    alternative: str = "greater",
    min_d: float = 0.0,
    alpha: float = 0.05,
    ci_method: str = "analytic",
    n_resamples: int = 2000,
    seed: int = 0,
    interval: bool = True,
) -> Comparison:
    """Compare treated against control and return every number the verdict needs.

    ``interval=False`` skips the d interval (NaN bounds): the verdict does not use it (it uses the
    two p-values, whose agreement with the interval is tested separately), so simulations of the
    verdict path run without its root finding.

    * d: d_z when paired; independent samples: the mean difference over sqrt((s_t^2 + s_c^2) / 2)
      (Bonett's standardiser; identical to the pooled Cohen's d when the groups have equal size).
      hedges_g: d * J(df).
    * d CI and p_min_effect (the test that the effect exceeds ``min_d``): paired, and independent
      groups of equal size: :func:`cohens_d_ci` / :func:`min_effect_test` (noncentral t; the
      pooled t equals Welch's when n_t = n_c). Independent groups of unequal size: Bonett's
      Welch-consistent interval and z test (:func:`bonett_ci`, :func:`min_effect_test_bonett`),
      because the pooled test's size depends on which group has the larger variance. The CI is at
      1 - 2*alpha (one-sided claims; its relevant end is the one-sided 1 - alpha bound) or
      1 - alpha (two-sided claims). ``ci_method='bootstrap'`` replaces the interval by BCa (the
      tests stay as above).
    * t, df, p_value: Welch t (independent) or paired t, in the claimed direction.

    Raises ValueError for bad settings (alternative, alpha, min_d, ci_method, paired lengths)
    and EvidenceError when a sample has < 3 values or non-finite values. Data with no variance to
    standardise by (identical paired differences; both samples constant) are judged, not refused:
    see :func:`_degenerate`.
    """
    check_settings(alternative, alpha, min_d)
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    tr = _evidence(treated, "treated")
    co = _evidence(control, "control")
    if paired and tr.size != co.size:
        raise ValueError(
            f"paired comparison needs equal lengths: treated has {tr.size} values, control has {co.size}"
        )
    if (paired and _no_spread(tr - co, tr, co)) or (not paired and _no_spread(tr, tr) and _no_spread(co, co)):
        return _degenerate(tr, co, paired, alternative, min_d, alpha)

    _, df_pooled, _ = _design(tr, co, paired)
    ci_conf = _ci_confidence(alpha, alternative)
    unequal = not paired and tr.size != co.size
    if unequal:
        d, _ = bonett_d(tr, co)
        lo, hi = bonett_ci(tr, co, confidence=ci_conf)
        p_min = min_effect_test_bonett(tr, co, min_d=min_d, alternative=alternative)
        p_refute = refute_test_bonett(tr, co, min_d=min_d, alternative=alternative)
        method = "bonett"
    else:
        d = cohens_d(tr, co, paired=paired)
        lo, hi = (cohens_d_ci(tr, co, paired=paired, confidence=ci_conf, method="analytic") if interval
                  else (float("nan"), float("nan")))
        p_min = min_effect_test(tr, co, paired=paired, min_d=min_d, alternative=alternative)
        p_refute = refute_test(tr, co, paired=paired, min_d=min_d, alternative=alternative)
        method = "analytic"
    if ci_method == "bootstrap" and interval:
        lo, hi = cohens_d_ci(
            tr, co, paired=paired, confidence=ci_conf, method="bootstrap",
            n_resamples=n_resamples, seed=seed,
        )
        method = "bootstrap"
    tt = ttest(tr, co, paired=paired, alternative=alternative)
    mt, mc = float(np.mean(tr)), float(np.mean(co))
    return Comparison(
        n_treated=int(tr.size),
        n_control=int(co.size),
        paired=bool(paired),
        alternative=alternative,
        min_d=float(min_d),
        alpha=float(alpha),
        mean_treated=mt,
        mean_control=mc,
        mean_difference=float(np.mean(tr - co)) if paired else mt - mc,
        d=float(d),
        hedges_g=float(d * hedges_correction(df_pooled)),
        d_ci_low=float(lo),
        d_ci_high=float(hi),
        ci_method=method,
        t=tt.t,
        df=tt.df,
        p_value=tt.p,
        p_min_effect=float(p_min),
        p_refute=float(p_refute),
    )


def _no_spread(values: np.ndarray, *sources: np.ndarray) -> bool:
    """All values equal up to the rounding of the arithmetic that produced them (x + 1 - x is not
    exactly 1 for every x): a spread within 64 ulps of the sources' magnitude is no spread."""
    scale = max(float(np.max(np.abs(s))) for s in sources)
    return float(np.ptp(values)) <= 64 * np.finfo(float).eps * max(scale, np.finfo(float).tiny)


def _degenerate(tr: np.ndarray, co: np.ndarray, paired: bool, alternative: str, min_d: float,
                alpha: float) -> Comparison:
    """The verdict-ready record of data with no spread to standardise by: every paired difference
    identical, or both independent samples constant. Identical outcomes are a finding, not an error.

    * No difference (all paired differences 0, or both samples the same constant): d = 0, both
      p-values 1, the d interval unbounded (there is no scale to measure d in): not supported, as in
      :func:`compare_to_null`'s tie.
    * A non-zero difference c that every unit shows: d = sign(c) * inf, and the two p-values are the
      exact distribution-free test of that pattern, which needs no variance: the sign test (paired:
      all n differences on one side, p = 0.5^n under differences symmetric about 0) or the rank-sum
      test (independent: every treated value beyond every control value, p = 1 / C(n_t + n_c, n_t)
      under exchangeable samples); doubled (capped at 1) when two-sided, 1 against the claimed
      direction. The min-effect p equals it: with zero spread the margin min_d * SD is 0, so "beyond
      min_d SDs" is "beyond 0" (the same reading :func:`compare_to_null` gives a shifted null). A
      claim is then supported only when n is large enough for the pattern to be improbable by chance.
    """
    diff = float(np.mean(tr - co)) if paired else float(np.mean(tr) - np.mean(co))
    if abs(diff) <= 64 * np.finfo(float).eps * max(float(np.max(np.abs(tr))), float(np.max(np.abs(co))), 1e-300):
        diff = 0.0
    n_t, n_c = int(tr.size), int(co.size)
    if diff == 0:
        # no scale to measure d in: neither "beyond min_d" nor "within min_d" can be shown
        d, lo, hi, p, p_refute = 0.0, float("-inf"), float("inf"), 1.0, float("nan")
    else:
        p_one = 0.5 ** n_t if paired else 1.0 / math.comb(n_t + n_c, n_t)
        d = math.copysign(math.inf, diff)
        lo = hi = d
        if alternative == "two-sided":
            p, p_refute = min(1.0, 2 * p_one), 1.0
        else:
            along = (diff > 0) == (alternative == "greater")
            # every unit against the claimed direction refutes it by the same exact test
            p, p_refute = (p_one, 1.0) if along else (1.0, p_one)
    _, df_pooled, _ = _design(tr, co, paired)
    mt, mc = float(np.mean(tr)), float(np.mean(co))
    return Comparison(
        n_treated=n_t, n_control=n_c, paired=bool(paired), alternative=alternative, min_d=float(min_d),
        alpha=float(alpha), mean_treated=mt, mean_control=mc, mean_difference=diff if paired else mt - mc,
        d=d, hedges_g=d, d_ci_low=lo, d_ci_high=hi, ci_method="degenerate", t=d, df=float(df_pooled),
        p_value=float(p), p_min_effect=float(p), p_refute=float(p_refute),
        extra={"degenerate": "identical differences" if paired else "both samples constant",
               "test": ("sign" if paired else "rank-sum") if diff != 0 else "none"},
    )


def verdict(comparison: Comparison, p_value_adjusted: float, p_min_effect_adjusted: float,
            p_refute_adjusted: float = float("nan")) -> str:
    """The claim's verdict from its corrected p-values: one of :data:`VERDICTS`.

    * 'supported': both ``p_value_adjusted`` (no effect) and ``p_min_effect_adjusted`` (effect <= min_d)
      are < alpha: the effect is shown to exceed min_d in the claimed direction;
    * 'refuted': ``p_refute_adjusted`` (effect >= min_d) is < alpha: the effect is shown to be smaller
      than min_d in the claimed direction (for 'two-sided': |d| < min_d, two one-sided tests);
    * 'inconclusive': neither.

    The p-values are already directional (see the module docstring) and corrected within the same
    family by the same method, so "refuted" carries the same error control as "supported". The two
    cannot both hold (p_min_effect + p_refute >= 1 before correction, and correction only raises
    them); the order of the checks below is for NaN safety only. NaN p-values decide nothing.
    """
    alpha = comparison.alpha
    p1, p2, p3 = float(p_value_adjusted), float(p_min_effect_adjusted), float(p_refute_adjusted)
    # NaN comparisons are False, so a missing p-value fails each rule.
    if p1 < alpha and p2 < alpha:
        return "supported"
    if p3 < alpha:
        return "refuted"
    return "inconclusive"
