"""Compatibility shim: the statistics engine was split into single-purpose modules (see
:mod:`emocheck.stats`); ``from emocheck.stats.core import compare`` keeps working."""
from emocheck.stats import *  # noqa: F401,F403
from emocheck.stats import __all__  # noqa: F401
from emocheck.stats.comparison import _ci_confidence, _evidence  # noqa: F401
