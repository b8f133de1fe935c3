"""Phase 7 statistics: effect sizes, tests, corrections, power and the verdict rule.

``from emocheck import stats; stats.cohens_d(a, b)``. One module per job:

* :mod:`~emocheck.stats.effect_sizes`: Cohen's d / Hedges' g and their intervals;
* :mod:`~emocheck.stats.ttests`: Welch / paired / one-sample t and the noncentral-t min-effect test;
* :mod:`~emocheck.stats.corrections`: Holm / Bonferroni / BH within a declared family;
* :mod:`~emocheck.stats.power`: power and sample size;
* :mod:`~emocheck.stats.bootstrap`: AUC, bootstrap intervals, the choice of k;
* :mod:`~emocheck.stats.comparison`: :class:`Comparison`, :func:`compare` and :func:`verdict` (one of
  ``VERDICTS``: supported / refuted / inconclusive);
* :mod:`~emocheck.stats.directions`: the treated direction against K control directions (random effect);
* :mod:`~emocheck.stats.nulls`: an observed statistic against a null distribution of draws.

``emocheck.stats.core`` re-exports the same names for code written before the split.
"""
from emocheck.stats._common import ALTERNATIVES
from emocheck.stats.bootstrap import auc, auc_ci, bootstrap_ci, k_selection_bootstrap
from emocheck.stats.comparison import VERDICTS, Comparison, compare, verdict
from emocheck.stats.corrections import adjust_pvalues
from emocheck.stats.directions import compare_directions
from emocheck.stats.effect_sizes import cohens_d, cohens_d_ci, hedges_correction
from emocheck.stats.nulls import compare_to_null
from emocheck.stats.power import power, required_n
from emocheck.stats.ttests import TTest, min_effect_test, ttest

__all__ = [
    "ALTERNATIVES",
    "Comparison",
    "TTest",
    "VERDICTS",
    "adjust_pvalues",
    "auc",
    "auc_ci",
    "bootstrap_ci",
    "cohens_d",
    "cohens_d_ci",
    "compare",
    "compare_directions",
    "compare_to_null",
    "hedges_correction",
    "k_selection_bootstrap",
    "min_effect_test",
    "power",
    "required_n",
    "ttest",
    "verdict",
]
