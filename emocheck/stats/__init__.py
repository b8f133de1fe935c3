"""Phase 7 statistics: effect sizes, tests, corrections, power and the verdict rule.

``from emocheck import stats; stats.cohens_d(a, b)``: the public functions live in
:mod:`emocheck.stats.core` and are re-exported here.
"""
from emocheck.stats.core import *  # noqa: F401,F403
from emocheck.stats.core import __all__  # noqa: F401
