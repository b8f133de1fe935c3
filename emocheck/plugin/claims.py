"""The claim API: a research claim is a pytest test marked with ``@claim(...)``.

    from emocheck import claim

    @claim(
        "the {emotion} direction separates held-out {emotion} prompts from neutral ones",
        family="q1_separation",   # multiple-comparison family (must live in one module)
        paired=False,             # paired by prompt, or independent samples
        alternative="greater",    # 'greater' (treated > control), 'less', 'two-sided'
        min_d=0.5,                # smallest |d| that makes the claim true
        alpha=None,               # None: the session alpha (--emocheck-alpha / ini emocheck_alpha)
    )
    @pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
    def test_direction_separates(model_name, emotion, evidence):
        ...
        evidence.record(treated=[...], control=[...], metrics={"auc": 0.97, "layer": 9})

``claim(...)`` returns the marker ``pytest.mark.emocheck_claim(...)`` (registered by
``emocheck.plugin.hooks``); its arguments are validated here, when the module is imported, so a typo in
``alternative`` fails at collection, not after an hour of activations. ``evidence`` is a fixture of
the plugin that hands the test an :class:`Evidence` recorder; how the recorded samples become a
verdict is described in ``emocheck.plugin.hooks``.
"""
from __future__ import annotations

import math
import numbers
import string
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import pytest

from emocheck.errors import ConfigError, EvidenceError

MARKER = "emocheck_claim"
ALTERNATIVES = ("greater", "less", "two-sided")

__all__ = ["ALTERNATIVES", "MARKER", "ClaimSpec", "Evidence", "claim", "claim_spec", "format_statement"]


@dataclass(frozen=True)
class ClaimSpec:
    """What a ``@claim`` marker declares (plain builtins only)."""

    statement: str
    family: str
    paired: bool = False
    alternative: str = "greater"
    min_d: float = 0.0
    alpha: float | None = None
    # the number of null draws a record_null claim is judged on, when known before it runs: an int,
    # or 'module:function' naming a function of the Profile that returns it (collection checks the
    # family can be supported with it: emocheck.stats.nulls.unsupportable_reason)
    null_draws: int | str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def effective_alpha(self, session_alpha: float) -> float:
        return float(self.alpha) if self.alpha is not None else float(session_alpha)


def _validate(statement, family, paired, alternative, min_d, alpha, null_draws=None) -> ClaimSpec:
    if not isinstance(statement, str) or not statement.strip():
        raise ConfigError("@claim needs a non-empty statement string as its first argument")
    if not isinstance(family, str) or not family.strip():
        raise ConfigError(f"@claim({statement!r}): family must be a non-empty string, got {family!r}")
    if not isinstance(paired, bool):
        raise ConfigError(f"@claim({statement!r}): paired must be True or False, got {paired!r}")
    if alternative not in ALTERNATIVES:
        raise ConfigError(
            f"@claim({statement!r}): alternative must be one of {', '.join(map(repr, ALTERNATIVES))}, "
            f"got {alternative!r}"
        )
    if isinstance(min_d, bool) or not isinstance(min_d, numbers.Real) or not math.isfinite(min_d):
        raise ConfigError(f"@claim({statement!r}): min_d must be a finite number, got {min_d!r}")
    if min_d < 0:
        raise ConfigError(
            f"@claim({statement!r}): min_d={min_d} is negative; min_d is a magnitude (use "
            "alternative='less' for a claim that treated is lower than control)"
        )
    if alpha is not None:
        upper = 1.0 if alternative == "two-sided" else 0.5
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < upper:
            raise ConfigError(
                f"@claim({statement!r}): alpha must be None (session alpha) or a number in "
                f"(0, {upper:g}) for alternative={alternative!r}, got {alpha!r}"
            )
        alpha = float(alpha)
    if null_draws is not None and not (
            (isinstance(null_draws, int) and not isinstance(null_draws, bool) and null_draws >= 1)
            or (isinstance(null_draws, str) and null_draws.count(":") == 1 and all(null_draws.split(":")))):
        raise ConfigError(f"@claim({statement!r}): null_draws must be a positive int or 'module:function' "
                          f"(a function of the Profile returning the number of null draws), got {null_draws!r}")
    # Fail now, not at report time, on a statement that str.format cannot parse.
    try:
        list(string.Formatter().parse(statement))
    except ValueError as exc:
        raise ConfigError(f"@claim({statement!r}): statement is not a valid format string ({exc})") from None
    return ClaimSpec(
        statement=statement,
        family=family.strip(),
        paired=paired,
        alternative=alternative,
        min_d=float(min_d),
        alpha=alpha,
        null_draws=null_draws,
    )


def claim(
    statement: str,
    *,
    family: str,
    paired: bool = False,
    alternative: str = "greater",
    min_d: float = 0.0,
    alpha: float | None = None,
    null_draws: int | str | None = None,
):
    """Declare a test as a research claim; returns the ``emocheck_claim`` marker decorator.

    ``statement`` is formatted with the test's parameters (``{emotion}``, ``{model_name}``) for the
    report. Raises ConfigError for an unknown ``alternative``, a negative ``min_d`` or a bad alpha.
    """
    spec = _validate(statement, family, paired, alternative, min_d, alpha, null_draws)
    kwargs = spec.to_dict()
    if kwargs["null_draws"] is None:
        del kwargs["null_draws"]     # the marker of a claim that does not declare its draws is as before
    return getattr(pytest.mark, MARKER)(**kwargs)


def claim_spec(item) -> ClaimSpec | None:
    """The ClaimSpec of a collected test item, or None when it is not a claim."""
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    kwargs = dict(mark.kwargs)
    if mark.args:  # pytest.mark.emocheck_claim("statement", family=...) written by hand
        kwargs.setdefault("statement", mark.args[0])
    if "family" not in kwargs:
        raise ConfigError(f"{item.nodeid}: the emocheck_claim marker needs family=...; use emocheck.claim(...)")
    return _validate(
        kwargs.get("statement"),
        kwargs.get("family"),
        kwargs.get("paired", False),
        kwargs.get("alternative", "greater"),
        kwargs.get("min_d", 0.0),
        kwargs.get("alpha"),
        kwargs.get("null_draws"),
    )


class _KeepMissing(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def format_statement(statement: str, params: Mapping[str, Any]) -> str:
    """``statement.format(**params)``; placeholders without a parameter are left as written."""
    try:
        return string.Formatter().vformat(statement, (), _KeepMissing(params))
    except (IndexError, KeyError, ValueError, AttributeError):
        return statement


# ----------------------------------------------------------------------------------------------
# Evidence
# ----------------------------------------------------------------------------------------------


def _to_numpy(values):
    """numpy/torch/list -> flat float64 numpy array (torch tensors are detached and moved to CPU)."""
    import numpy as np

    if hasattr(values, "detach") and hasattr(values, "cpu"):  # torch.Tensor without importing torch
        values = values.detach().cpu()
        if hasattr(values, "float"):
            values = values.float()
        values = values.numpy()
    return np.asarray(values, dtype=float)


def _float_list(values, name: str) -> list[float]:
    if values is None:
        raise EvidenceError(f"evidence.record(): {name} is missing")
    if isinstance(values, (str, bytes)):
        raise EvidenceError(f"evidence.record(): {name} must be a sequence of numbers, got a string")
    try:
        arr = _to_numpy(values)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"evidence.record(): {name} must be a sequence of numbers ({exc})") from None
    if arr.ndim == 0:
        raise EvidenceError(f"evidence.record(): {name} must be a sequence of per-sample values, got one number")
    if arr.ndim > 1:
        squeezed = arr.squeeze()
        if squeezed.ndim != 1:
            raise EvidenceError(
                f"evidence.record(): {name} must be 1-D (one value per sample), got shape {tuple(arr.shape)}"
            )
        arr = squeezed
    return [float(v) for v in arr.tolist()]


def _is_matrix(values) -> bool:
    """True for a 2-D control with more than one column (one column squeezes to an ordinary sample)."""
    if values is None or isinstance(values, (str, bytes)):
        return False
    try:
        arr = _to_numpy(values)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 2 and arr.shape[1] > 1


def _metric_value(name: str, value):
    """A metric as a plain bool/int/float/str; 1-element arrays and tensors become floats."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        arr = _to_numpy(value)
    except (TypeError, ValueError):
        raise EvidenceError(
            f"evidence.record(): metric {name!r} must be a number or a string, got {type(value).__name__}"
        ) from None
    if arr.size != 1:
        raise EvidenceError(
            f"evidence.record(): metric {name!r} must be a single number, got an array of shape "
            f"{tuple(arr.shape)} (record a summary such as its mean instead)"
        )
    return float(arr.reshape(-1)[0])


KINDS = ("samples", "directions", "vs_null")
#: at most this many example rows per claim (the report shows them side by side)
MAX_EXAMPLES = 10


def _plain_value(value, where: str):
    """A JSON-able copy of an example field: str/bool/None, a finite number (else None), or a dict /
    list of those. numpy scalars become Python numbers."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v, where) for v in value]
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:
        return _plain_value(value.item(), where)
    raise EvidenceError(f"evidence.record(): examples field {where} must be text, a number or a list/dict of "
                        f"those, got {type(value).__name__}")


def _clean_examples(examples) -> dict | None:
    """Check ``examples`` ({"rule": str, "rows": [dict, ...], ...}, e.g. from
    emocheck.patching.examples.example_continuations) and return a plain copy."""
    if examples is None:
        return None
    if not isinstance(examples, Mapping):
        raise EvidenceError("evidence.record(): examples must be a dict with 'rule' (how they were chosen) and "
                            f"'rows', got {type(examples).__name__}")
    rule, rows = examples.get("rule"), examples.get("rows")
    if not isinstance(rule, str) or not rule.strip():
        raise EvidenceError("evidence.record(): examples need a 'rule' saying how the examples were chosen "
                            "(a fixed rule, not a hand pick)")
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise EvidenceError("evidence.record(): examples['rows'] must be a list of dicts (one per example)")
    if len(rows) > MAX_EXAMPLES:
        raise EvidenceError(f"evidence.record(): {len(rows)} example rows; at most {MAX_EXAMPLES} (the report "
                            "shows a few; the samples table holds them all)")
    return _plain_value(dict(examples), "examples")


def _direction_matrix(values, n_prompts: int) -> list[list[float | None]]:
    """[n_prompts, K] control scores as a list of rows, NaN cells as None (plain builtins)."""
    import numpy as np

    arr = _to_numpy(values)
    if arr.ndim != 2 or arr.shape[0] != n_prompts:
        raise EvidenceError(
            f"evidence.record(): control must be [n_prompts, n_directions] = [{n_prompts}, K], got shape "
            f"{tuple(arr.shape)}"
        )
    if np.any(np.isinf(arr)):
        raise EvidenceError("evidence.record(): control contains inf; use NaN for a direction not run on a prompt")
    return [[None if math.isnan(v) else float(v) for v in row] for row in arr.tolist()]


class Evidence:
    """Recorder handed to a claim test by the ``evidence`` fixture.

    Call exactly one of, exactly once:

    * :meth:`record` with the per-sample values of the treated and the control condition (1-D
      ``control``: an ordinary paired or independent comparison, ``kind='samples'``), or, in a
      ``paired=True`` claim, a 2-D ``control`` [n_prompts, K] of K control directions
      (``kind='directions'``, judged by :func:`emocheck.stats.compare_directions`);
    * :meth:`record_null` with one observed statistic and K null draws (``kind='vs_null'``, judged by
      :func:`emocheck.stats.compare_to_null`).

    The plugin computes the statistics when the test finishes.
    """

    def __init__(self, nodeid: str = "", spec: ClaimSpec | None = None):
        self.nodeid = nodeid
        self.spec = spec
        self.kind: str | None = None
        self.treated: list[float] | None = None
        self.control: list | None = None
        self.observed: float | None = None
        self.null: list[float] | None = None
        self.metrics: dict[str, Any] = {}
        self.sample_ids: dict[str, list[str]] | None = None
        self.examples: dict | None = None

    @property
    def recorded(self) -> bool:
        return self.kind is not None

    def _refuse_second(self) -> None:
        if self.recorded:
            raise EvidenceError(
                f"evidence was recorded twice in {self.nodeid or 'this test'} (record() / record_null()); a "
                "claim is judged on exactly one comparison (split it into two claims)"
            )

    @staticmethod
    def _clean_metrics(metrics) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for key, value in dict(metrics or {}).items():
            if not isinstance(key, str) or not key:
                raise EvidenceError(f"evidence.record(): metric names must be non-empty strings, got {key!r}")
            clean[key] = _metric_value(key, value)
        return clean

    def record_null(
        self,
        observed: float,
        null: Sequence[float],
        *,
        metrics: Mapping[str, Any] | None = None,
        examples: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an observed statistic and K draws of it under a null (label-permuted subspaces,
        random head sets, random circuits). Judged by :func:`emocheck.stats.compare_to_null`: a
        Monte-Carlo p-value, d = (observed - mean(null)) / sd(null), ``min_d`` in null SDs."""
        self._refuse_second()
        if isinstance(observed, (str, bytes)) or observed is None:
            raise EvidenceError("evidence.record_null(): observed must be one number")
        try:
            arr = _to_numpy(observed)
        except (TypeError, ValueError) as exc:
            raise EvidenceError(f"evidence.record_null(): observed must be one number ({exc})") from None
        if arr.size != 1:
            raise EvidenceError(
                f"evidence.record_null(): observed must be one number, got shape {tuple(arr.shape)}"
            )
        x = float(arr.reshape(-1)[0])
        if not math.isfinite(x):
            raise EvidenceError(f"evidence.record_null(): observed is {x}; it must be finite")
        draws = _float_list(null, "null")
        if len(draws) < 2:
            raise EvidenceError(f"evidence.record_null(): null has {len(draws)} draw(s); at least 2 are needed")
        bad = [i for i, v in enumerate(draws) if not math.isfinite(v)]
        if bad:
            raise EvidenceError(f"evidence.record_null(): null has non-finite draws at positions {bad[:5]}")
        clean = self._clean_metrics(metrics)
        shown = _clean_examples(examples)
        self.kind, self.observed, self.null, self.metrics = "vs_null", x, draws, clean
        self.sample_ids, self.examples = None, shown

    def record(
        self,
        treated: Sequence[float],
        control: Sequence[float],
        *,
        metrics: Mapping[str, Any] | None = None,
        sample_ids: Sequence | Mapping[str, Sequence] | None = None,
        examples: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the samples the claim is judged on.

        treated, control: one number per sample (lists, numpy arrays or torch tensors). For a
            paired claim both have the same length and position i of each belongs to sample i.
            Paired claims may pass a 2-D ``control`` [n_prompts, K]: K control directions, each
            scored on the same prompts (NaN where a direction was not run on a prompt), judged with
            directions as a random effect (:func:`emocheck.stats.compare_directions`, exchangeable
            null: the treated direction must lie outside its controls' distribution, not only above
            their average; every control direction needs at least two prompts).
        metrics: extra numbers/strings for the report (AUC, chosen layer, ...); shown as
            ``metric_<name>`` columns in effect_sizes.csv.
        sample_ids: ids written next to the values in ``samples/<claim>.csv``. Paired: one id per
            pair. Independent: either ``{"treated": [...], "control": [...]}`` or one sequence
            with the treated ids first, then the control ids.
        examples: a few treated/control pairs for a reader of the report (for a claim about generated
            text: the continuations, with their scores), chosen by a stated rule:
            ``{"rule": "how they were chosen", "rows": [{...}, ...], ...}`` of plain values, at most
            MAX_EXAMPLES rows (:func:`emocheck.patching.examples.example_continuations` builds them from
            a samples table). Shown in report.html's detail pane and report.md, written to
            ``statistics/examples/<claim>.json``; never part of the verdict.
        """
        self._refuse_second()
        shown = _clean_examples(examples)
        tr = _float_list(treated, "treated")
        paired = bool(self.spec.paired) if self.spec is not None else False
        if _is_matrix(control):
            if not paired:
                raise EvidenceError(
                    "evidence.record(): a 2-D control [n_prompts, n_directions] (control directions as a random "
                    "effect) needs a paired claim: declare @claim(..., paired=True)"
                )
            co_matrix = _direction_matrix(control, len(tr))
            ids = self._sample_ids(sample_ids, len(tr), len(tr), True)
            self.kind, self.treated, self.control = "directions", tr, co_matrix
            self.metrics, self.sample_ids, self.examples = self._clean_metrics(metrics), ids, shown
            return
        co = _float_list(control, "control")
        if paired and len(tr) != len(co):
            raise EvidenceError(
                f"evidence.record(): the claim is paired but treated has {len(tr)} values and control "
                f"has {len(co)}; paired samples need one treated and one control value per sample"
            )
        ids = self._sample_ids(sample_ids, len(tr), len(co), paired)
        clean_metrics = self._clean_metrics(metrics)
        self.kind = "samples"
        self.treated, self.control, self.metrics, self.sample_ids = tr, co, clean_metrics, ids
        self.examples = shown

    @staticmethod
    def _sample_ids(sample_ids, n_t: int, n_c: int, paired: bool) -> dict[str, list[str]]:
        if sample_ids is None:
            if paired:
                ids = [str(i) for i in range(n_t)]
                return {"treated": ids, "control": list(ids)}
            return {"treated": [f"t{i}" for i in range(n_t)], "control": [f"c{i}" for i in range(n_c)]}
        if isinstance(sample_ids, Mapping):
            t_ids = [str(s) for s in sample_ids.get("treated", [])]
            c_ids = [str(s) for s in sample_ids.get("control", [])]
        else:
            flat = [str(s) for s in (sample_ids.tolist() if hasattr(sample_ids, "tolist") else sample_ids)]
            if paired:
                t_ids, c_ids = flat, list(flat)
            else:
                t_ids, c_ids = flat[:n_t], flat[n_t:]
                if len(flat) != n_t + n_c:
                    raise EvidenceError(
                        f"evidence.record(): sample_ids has {len(flat)} entries; an independent-samples "
                        f"claim needs {n_t} treated + {n_c} control ids (or a dict with 'treated' and 'control')"
                    )
        if len(t_ids) != n_t or len(c_ids) != n_c:
            raise EvidenceError(
                f"evidence.record(): sample_ids do not match the samples ({len(t_ids)} treated ids for "
                f"{n_t} values, {len(c_ids)} control ids for {n_c} values)"
            )
        return {"treated": t_ids, "control": c_ids}
