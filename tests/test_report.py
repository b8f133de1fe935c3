"""Unit tests of emocheck.report: corrections by declared family, verdicts, files, tables."""
from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from emocheck.plugin import report as rep
from emocheck import stats


def make_result(claim_id, family, family_size, treated=None, control=None, *, paired=False, min_d=0.0,
                alternative="greater", status="ok", error=None, metrics=None, seed=0):
    settings = {"paired": paired, "alternative": alternative, "min_d": min_d, "alpha": 0.05,
                "ci_method": "analytic", "n_resamples": 200, "seed": seed}
    result = {
        "claim_id": claim_id, "short_id": claim_id.split("/")[-1], "module": claim_id.split("::")[0],
        "family": family, "family_size": family_size, "statement": f"statement of {claim_id}",
        "model": "m", "params": {"model_name": "m"}, "settings": settings, "status": status, "error": error,
        "comparison": None, "metrics": metrics or {}, "samples": None,
    }
    if treated is not None:
        comp = stats.compare(treated, control, paired=paired, alternative=alternative, min_d=min_d)
        result["comparison"] = comp.to_dict()
        ids = [str(i) for i in range(len(treated))] if paired else None
        result["samples"] = {"treated": list(map(float, treated)), "control": list(map(float, control)),
                             "sample_ids": {"treated": ids, "control": ids} if ids else None}
    return result


def _sample(shift, n=30, seed=0):
    r = np.random.default_rng(seed)
    return r.normal(shift, 1.0, n), r.normal(0.0, 1.0, n)


@pytest.fixture
def results():
    out = []
    for i, shift in enumerate([1.5, 0.6, 0.0]):
        t, c = _sample(shift, seed=i)
        out.append(make_result(f"h/test_a.py::test_x[{i}]", "fam_a", 5, t, c, metrics={"auc": 0.5 + i / 10}))
    t, c = _sample(0.9, seed=10)
    out.append(make_result("h/test_b.py::test_y[p]", "fam_b", 1, t, t - c * 0.1 - 0.3, paired=True, min_d=0.2))
    out.append(make_result("h/test_a.py::test_err[0]", "fam_a", 5, status="error", error="EvidenceError: too few"))
    return out


def test_corrections_use_declared_family_size_and_do_not_depend_on_order(results):
    rows, families = rep.finalize(results, "holm")
    shuffled = list(results)
    random.Random(3).shuffle(shuffled)
    rows2, _ = rep.finalize(shuffled, "holm")
    assert pd.DataFrame(rows).equals(pd.DataFrame(rows2))
    assert [r["claim_id"] for r in rows] == sorted(r["claim_id"] for r in results)

    assert families["fam_a"] == {"declared": 5, "run": 3, "modules": ["h/test_a.py"]}
    fam_a = [r for r in rows if r["family"] == "fam_a" and r["status"] == "ok"]
    raw = [r["p_value"] for r in fam_a]
    for method in rep.CORRECTIONS:
        expected = stats.adjust_pvalues(raw, method, n_tests=5)
        assert [r[f"p_{method}"] for r in fam_a] == pytest.approx(list(expected), rel=1e-12)
        # never the uncorrected p, never corrected for only the 3 that ran
        assert all(r[f"p_{method}"] >= r["p_value"] for r in fam_a)
    assert [r["p_adjusted"] for r in fam_a] == [r["p_holm"] for r in fam_a]
    assert fam_a[0]["p_bonferroni"] == pytest.approx(min(1.0, 5 * fam_a[0]["p_value"]))


def test_verdicts_follow_the_corrected_p_values(results):
    rows, _ = rep.finalize(results, "bonferroni")
    by_id = {r["claim_id"]: r for r in rows}
    assert by_id["h/test_a.py::test_x[0]"]["verdict"] == "supported"
    assert by_id["h/test_a.py::test_x[2]"]["verdict"] == "inconclusive"
    err = by_id["h/test_a.py::test_err[0]"]
    assert err["verdict"] == "error" and np.isnan(err["p_adjusted"]) and "too few" in err["error"]
    for r in rows:
        if r["status"] != "ok":
            continue
        comp = stats.Comparison.from_dict(next(x for x in results if x["claim_id"] == r["claim_id"])["comparison"])
        assert r["verdict"] == stats.verdict(comp, r["p_adjusted"], r["p_min_effect_adjusted"], r["p_refute_adjusted"])
        assert r["verdict_uncorrected"] == stats.verdict(comp, comp.p_value, comp.p_min_effect, comp.p_refute)


def test_claims_failing_only_after_correction_are_listed():
    # p = 0.02 alone: supported; in a declared family of 5: Holm/Bonferroni give 0.1 -> not supported
    n = 20
    z = np.linspace(-1, 1, n)
    z = (z - z.mean()) / z.std(ddof=1)
    from scipy import stats as st

    t = z + st.t.isf(0.02, n - 1) / np.sqrt(n)
    res = [make_result("h/test_f.py::test_f[0]", "f", 5, t, np.zeros(n), paired=True)]
    rows, fams = rep.finalize(res, "holm")
    assert rows[0]["verdict_uncorrected"] == "supported" and rows[0]["verdict"] == "inconclusive"
    assert rep.changed_by_correction(rows) == rows
    rows, _ = rep.finalize([dict(res[0], family_size=1)], "holm")
    assert rows[0]["verdict"] == "supported" and rep.changed_by_correction(rows) == []


def _paired_at(d: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Paired samples whose d_z is exactly ``d``."""
    z = np.linspace(-1, 1, n)
    z = (z - z.mean()) / z.std(ddof=1)
    return z + d, np.zeros(n)


def test_refuted_needs_the_corrected_upper_bound_below_min_d():
    # d = 0 exactly, n = 40 pairs, min_d 0.5: alone the upper bound is about 0.27, refuted; in a declared
    # family of 200 the bound at alpha/200 is above 0.5: inconclusive, with the n that would decide it.
    t, c = _paired_at(0.0)
    res = make_result("h/test_r.py::test_r[0]", "r", 1, t, c, paired=True, min_d=0.5)
    rows, _ = rep.finalize([res], "holm")
    row = rows[0]
    assert row["verdict"] == row["verdict_uncorrected"] == "refuted"
    assert row["d_bound_refute_adjusted"] < 0.5 and row["p_refute_adjusted"] < 0.05
    assert row["n_decide_at_observed"] is None and "d < 0.5 shown" in row["reason"]
    rows, _ = rep.finalize([dict(res, family_size=200)], "holm")
    row = rows[0]
    assert row["verdict_uncorrected"] == "refuted" and row["verdict"] == "inconclusive"
    assert row["d_bound_refute_adjusted"] > 0.5 and rep.changed_by_correction(rows) == rows
    # at d = 0 the n to decide at the observed effect and if d = 0 are the same question: equal, and above 40
    assert row["n_decide_at_observed"] == row["n_refute_if_d0"] > 40
    from emocheck.stats.power import power_refute

    n = row["n_refute_if_d0"]
    level = 0.05 / 200
    assert power_refute(0.0, n - 1, np.sqrt(n), min_d=0.5, alpha=level) >= 0.8
    assert power_refute(0.0, n - 2, np.sqrt(n - 1), min_d=0.5, alpha=level) < 0.8
    assert rep.decision_n_cell(row) == f"{n}/{n}"


def test_two_sided_claims_are_refuted_by_two_one_sided_tests():
    # |d| < min_d needs both one-sided bounds inside (-min_d, min_d): an effect of 0.3 against min_d 0.5 at
    # n 200 is refuted two-sided and "greater"; "less" (d < -0.5) too, the effect points the other way.
    # An effect of -0.45 is too close to -min_d for the two one-sided tests at this n.
    t, c = _paired_at(0.3, n=200)
    verdicts = {}
    for alt in ("two-sided", "greater", "less"):
        rows, _ = rep.finalize([make_result(f"h/test_t.py::test_t[{alt}]", "t", 1, t, c, paired=True, min_d=0.5,
                                            alternative=alt)], "holm")
        verdicts[alt] = rows[0]["verdict"]
    assert verdicts == {"two-sided": "refuted", "greater": "refuted", "less": "refuted"}
    t, c = _paired_at(-0.45, n=200)
    rows, _ = rep.finalize([make_result("h/test_t.py::test_u", "t", 1, t, c, paired=True, min_d=0.5,
                                        alternative="two-sided")], "holm")
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["p_refute"] > 0.05


def test_write_statistics_files(results, tmp_path):
    rows, families = rep.finalize(results, "holm")
    settings = {"profile": "ci", "models": ["m"], "correction": "holm", "alpha": 0.05}
    paths = rep.write_statistics(results, rows, families, settings, tmp_path / "statistics")

    eff = pd.read_csv(paths["effect_sizes"])
    assert len(eff) == 5
    assert {"claim_id", "d", "d_ci_low", "d_ci_high", "p_value", "p_adjusted", "p_bonferroni", "p_holm", "p_bh",
            "p_min_effect_holm", "d_bound_adjusted", "planning_level", "detectable_d_80",
            "n_required_excess_0.2", "reason", "sign", "verdict", "metric_auc"} <= set(eff.columns)
    import csv

    raw = list(csv.DictReader(paths["effect_sizes"].open()))
    assert {r["n_treated"] for r in raw} == {"30", ""}  # integers stay integers; errors blank

    power = pd.read_csv(paths["power_csv"])
    assert len(power) == 4 and list(power.columns) == rep.POWER_COLUMNS
    assert set(power.n_unit) == {"per group", "pairs"}
    pj = json.loads(paths["power_json"].read_text())
    assert pj["settings"]["correction"] == "holm" and len(pj["claims"]) == 4

    paired_row = next(r for r in rows if r["claim_id"] == "h/test_b.py::test_y[p]")
    paired = pd.read_csv(tmp_path / "statistics" / paired_row["samples_file"])
    assert list(paired.columns) == ["sample_id", "treated", "control", "difference"]
    again = stats.compare(paired.treated, paired.control, paired=True, min_d=0.2)
    assert again.d == pytest.approx(paired_row["d"], rel=1e-12)
    indep_row = rows[1]
    indep = pd.read_csv(tmp_path / "statistics" / indep_row["samples_file"])
    assert indep.treated.notna().sum() == 30 and indep.control.notna().sum() == 30

    forests = {k: v for k, v in paths.items() if k.startswith("forest_plot:")}
    assert set(forests) == {"forest_plot:fam_a", "forest_plot:fam_b"}  # one figure per family
    assert all(v.read_bytes()[:4] == b"\x89PNG" for v in forests.values())
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    md = paths["report"].read_text()
    assert "| claim" in md and "How the verdict is reached" in md and "fam_a" in md

    # a later session rewrites the files: they describe exactly that session
    rows1, fam1 = rep.finalize(results[:1], "holm")
    rep.write_statistics(results[:1], rows1, fam1, settings, tmp_path / "statistics")
    assert len(pd.read_csv(paths["effect_sizes"])) == 1


def test_table_and_names(results):
    rows, families = rep.finalize(results, "holm")
    text = rep.format_table(rows)
    assert text.splitlines()[0].split()[:3] == ["claim", "model", "statement"]
    assert "error: EvidenceError: too few" in text
    assert "fam_a" in rep.format_families(families)
    a, b = rep.safe_name("h/test_a.py::test_x[a/b]"), rep.safe_name("h/test_a.py::test_x[a_b]")
    assert a != b and all(ch.isalnum() or ch in "._-" for ch in a)
    assert rep.fmt_p(0.00001) == "1.0e-05" and rep.fmt_p(0.0123) == "0.012" and rep.fmt_p(float("nan")) == "-"


def test_github_summary_is_appended(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("before\n")
    rep.append_github_summary("# report\n", path)
    assert path.read_text() == "before\n# report\n"


def test_forest_plot_without_numbers_writes_nothing(tmp_path):
    from emocheck.plugin.figures import forest_plot

    rows, _ = rep.finalize([make_result("h/t.py::t", "f", 1, status="error", error="x")], "holm")
    assert forest_plot(rows, tmp_path / "f.png") is False
    assert not (tmp_path / "f.png").exists()
