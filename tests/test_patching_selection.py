"""The layer/alpha rule gates on the treated directions only; random fluency and dose matching."""
import numpy as np
import pandas as pd

from emocheck.patching.conditions import EMOTIONS
from emocheck.patching.selection import (dose_matched_alpha, plot_random_fluency, plot_sweep, random_fluency,
                                         select_layer_alpha, sweep_layers)


def _table(random_dnll=lambda a: 0.5 * a):
    rows = []
    for layer in (1, 2):
        for alpha in (0.5, 1.0, 2.0, 4.0):
            for e in EMOTIONS:
                rows.append({"layer": layer, "alpha": alpha, "kind": "emotion", "emotion": e,
                             "median_dnll": 0.15 * alpha, "mean_drep3": 0.0,
                             "target_d_vs_baseline": alpha * (1 if layer == 2 else 0.5)})
            rows.append({"layer": layer, "alpha": alpha, "kind": "random", "emotion": "",
                         "median_dnll": random_dnll(alpha), "mean_drep3": 0.0, "target_d_vs_baseline": np.nan})
    return pd.DataFrame(rows)


def test_rule_ignores_the_random_directions_fluency():
    sel = select_layer_alpha(_table(), n_layers=4)
    # alpha 4 breaks the emotion vectors (0.6 > log 1.5); random breaks from alpha 1 (0.5 > 0.405) and
    # would have forced alpha 0.5 under the old rule.
    assert (sel["layer"], sel["alpha"]) == (2, 2.0)
    cells = pd.DataFrame(sel["cells"])
    assert not cells.loc[(cells["layer"] == 2) & (cells["alpha"] == 2.0), "random_fluent"].iloc[0]
    bad = _table().assign(median_dnll=5.0)
    sel = select_layer_alpha(bad, n_layers=4)
    assert sel["alpha"] == 0.5 and "no fluent" in sel["reason"]
    assert sweep_layers(18, (0.25, 0.5, 0.75)) == [4, 8, 13]


def test_dose_matched_alpha():
    sel = select_layer_alpha(_table(), n_layers=4)           # treated dNLL at (2, 2.0) = 0.3
    assert sel["dose_matched_alpha"] == 0.5                  # random: 0.25, 0.5, 1.0, 2.0 -> closest 0.25 at 0.5
    cells = pd.DataFrame(sel["cells"])
    assert dose_matched_alpha(cells, 2, 1.0) == 0.5          # target 0.15: |0.25-0.15| < |0.5-0.15|
    same = select_layer_alpha(_table(random_dnll=lambda a: 0.15 * a), n_layers=4)
    assert same["dose_matched_alpha"] == same["alpha"]


def test_random_fluency_finding(tmp_path):
    rf = random_fluency(_table())
    row = rf[(rf["layer"] == 2) & (rf["alpha"] == 1.0)].iloc[0]
    assert row["random_breaks_text"] and not row["emotion_breaks_text"]
    assert row["random_median_dnll"] == 0.5 and row["emotion_median_dnll"] == 0.15
    plot_random_fluency(rf, tmp_path / "rf.png")
    assert (tmp_path / "rf.png").stat().st_size > 0


def test_sweep_figure_is_drawn_when_every_d_is_undefined(tmp_path):
    """A tiny sweep (one tuning prompt) has no paired SD, so every d is NaN: the figure is still drawn
    (alpha limits from the swept alphas; a note that d is undefined) instead of failing on the log axis."""
    rows = [dict(kind=kind, emotion=e, layer=3, alpha=a, target_d_vs_baseline=np.nan, median_dnll=0.1 * a)
            for kind, emotions in (("emotion", EMOTIONS), ("random", ("",))) for e in emotions
            for a in (0.5, 1.0, 2.0, 4.0)]
    for table in (pd.DataFrame(rows), pd.DataFrame([r for r in rows if r["alpha"] == 1.0])):
        path = tmp_path / f"sweep_{len(table)}.png"
        plot_sweep(table, path, "tiny sweep")
        assert path.stat().st_size > 1000
        rf = pd.DataFrame({"layer": [3], "alpha": [1.0], "random_median_dnll": [np.nan], "emotion_median_dnll": [np.nan]})
        plot_random_fluency(rf, tmp_path / "rf_nan.png")
        assert (tmp_path / "rf_nan.png").stat().st_size > 1000
