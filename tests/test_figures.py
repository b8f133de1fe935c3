"""Unit tests of emocheck.plugin.figures: one readable forest plot per family, null band, min_d."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from emocheck.plugin import figures as fig
from emocheck.plugin import report as rep
from tests.test_report import make_result


def _rows(n_statements, models=("gemma3-270m", "smollm2-135m"), family="q3_big"):
    rng = np.random.default_rng(0)
    results = []
    for i in range(n_statements):
        for m in models:
            r = make_result(f"h/test_q.py::test_s[{m}-{i}]", family, n_statements * len(models),
                            rng.normal(0.4 + 0.02 * i, 1, 40), rng.normal(0, 1, 40), min_d=0.3, seed=i)
            r.update(model=m, statement=f"the steering vector number {i} raises the target emotion's evaluator "
                                        f"score more than random directions of the same norm do")
            results.append(r)
    return rep.finalize(results, "holm")


def test_null_band_matches_the_t_distribution():
    from scipy import stats as st

    lo, hi = fig.null_band({"n_treated": 30, "n_control": 30, "paired": False})
    assert hi == pytest.approx(st.t.ppf(0.975, 58) * math.sqrt(2 / 30)) and lo == -hi
    _, hi_p = fig.null_band({"n_treated": 25, "n_control": 25, "paired": True})
    assert hi_p == pytest.approx(st.t.ppf(0.975, 24) / 5)
    assert fig.null_band({"null_band_low": -0.1, "null_band_high": 0.3}) == (-0.1, 0.3)
    assert fig.null_band({"n_treated": None}) is None


def test_one_figure_per_family_readable_at_ninety_claims(tmp_path):
    rows, families = _rows(45)  # 90 claims in one family, 45 statements on two models
    rows2, fam2 = _rows(3, models=("smollm2-135m",), family="q1_small")
    paths = fig.family_forest_plots(rows + rows2, {**families, **fam2}, tmp_path)
    assert set(paths) == {"q3_big", "q1_small"}
    big = Image.open(paths["q3_big"])
    small = Image.open(paths["q1_small"])
    # one row per statement (not per claim): about 45 rows of two wrapped lines, two model panels side by side
    assert big.height < 3000 and big.width > small.width
    assert small.height < 700
    # pixels per statement row: enough for 8-point labels of two lines
    assert big.height / 45 > 40


def test_forest_plot_marks_verdicts_in_colour(tmp_path):
    rows, _ = _rows(6, models=("m",))
    for r in rows:  # draw three supported and three refuted claims
        r["verdict"] = "supported" if r["claim_id"][-2] in "012" else "refuted"
    assert fig.forest_plot(rows, tmp_path / "f.png", "t")
    pixels = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).reshape(-1, 3).astype(int)
    count = lambda rgb: int((np.abs(pixels - rgb).sum(axis=1) < 30).sum())  # noqa: E731
    green, red = count((0x1a, 0x98, 0x50)), count((0xd7, 0x30, 0x27))
    assert green > 200 and red > 200 and 0.5 < green / red < 2  # as many of each, beyond the legend's
    orange_legend_only = count((0xfd, 0xae, 0x61))
    for r in rows:  # the third verdict has its own colour (and marker)
        r["verdict"] = "inconclusive" if r["claim_id"][-2] in "012" else "refuted"
    fig.forest_plot(rows, tmp_path / "h.png", "t")
    pixels = np.asarray(Image.open(tmp_path / "h.png").convert("RGB")).reshape(-1, 3).astype(int)
    orange, green_left = count((0xfd, 0xae, 0x61)), count((0x1a, 0x98, 0x50))
    assert orange > 200 + orange_legend_only and green_left < green / 4
    assert set(fig.MARKERS) == {"supported", "refuted", "inconclusive"} and len(set(fig.MARKERS.values())) == 3
    for r in rows:
        r["verdict"] = "supported"
    fig.forest_plot(rows, tmp_path / "g.png", "t")
    pixels = np.asarray(Image.open(tmp_path / "g.png").convert("RGB")).reshape(-1, 3).astype(int)
    assert count((0xd7, 0x30, 0x27)) < red / 4  # only the legend's marker is left
    assert count((0xd9, 0xd9, 0xd9)) > 1000  # the null band is drawn
    assert count((0x45, 0x75, 0xb4)) > 50  # min_d is drawn


def test_null_band_for_design_level_claims_scales_the_t_band():
    from scipy import stats as st

    # vs_null: d = t and df = K - 1, so the band is the t(K-1) band itself
    lo, hi = fig.null_band({"kind": "vs_null", "d": 2.0, "t": 2.0, "df": 99})
    assert hi == pytest.approx(st.t.ppf(0.975, 99)) and lo == -hi
    # directions: d / t = SE / sigma_1
    _, hi = fig.null_band({"kind": "directions", "d": 0.5, "t": 2.5, "df": 17.3})
    assert hi == pytest.approx(st.t.ppf(0.975, 17.3) * 0.2)
    assert fig.null_band({"kind": "directions", "d": 0.0, "t": 0.0, "df": 5}) is None
