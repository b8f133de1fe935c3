"""Unit tests of emocheck.plugin.provenance: git state, versions, timing (fake), recomputing a verdict."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from emocheck.plugin import provenance as prov
from emocheck.plugin import report as rep
from tests.test_report import make_result


def test_git_state_reports_commit_and_dirty_hypotheses(tmp_path):
    assert prov.git_state(tmp_path)["commit"] is None
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "hypotheses").mkdir()
    (tmp_path / "hypotheses" / "test_q.py").write_text("x = 1\n")
    run("add", "-A")
    run("-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "init")
    clean = prov.git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["hypotheses_dirty"] is False
    (tmp_path / "hypotheses" / "test_q.py").write_text("x = 2\n")
    dirty = prov.git_state(tmp_path)
    assert dirty["hypotheses_dirty"] is True and dirty["dirty"] is True and dirty["commit"] == clean["commit"]


def test_versions_and_model_identities():
    v = prov.package_versions()
    assert v["python"] == ".".join(map(str, sys.version_info[:3])) and v["numpy"] == np.__version__
    ids = prov.model_identities(["ok", "bad"], identity=lambda n: {"sha": n} if n == "ok" else 1 / 0)
    assert ids["ok"] == {"sha": "ok"} and ids["bad"]["error"].startswith("ZeroDivisionError")


def test_phase_timing_uses_emocheck_timing_when_there(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "emocheck.timing", raising=False)
    import emocheck

    if hasattr(emocheck, "timing"):
        monkeypatch.delattr(emocheck, "timing")
    fake = types.ModuleType("emocheck.timing")
    calls = []
    fake.summary = lambda root, profile: calls.append((root, profile)) or {"extraction": {"wall_s": 12.5}}
    monkeypatch.setitem(sys.modules, "emocheck.timing", fake)
    out = prov.phase_timing(tmp_path, "ci", {"run": 1.23456})
    assert out["phases"] == {"extraction": {"wall_s": 12.5}} and calls == [(tmp_path, "ci")]
    assert out["session_wall_s"] == {"run": 1.235}
    fake.summary = lambda root, profile: 1 / 0
    assert "ZeroDivisionError" in prov.phase_timing(tmp_path, "ci", {})["phases_note"]


def test_phase_timing_survives_a_failing_timing_summary(monkeypatch, tmp_path):
    from emocheck import timing

    def broken(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(timing, "summary", broken)
    out = prov.phase_timing(tmp_path, "ci", {"run": 2.0})
    assert out["phases"] is None and "disk gone" in out["phases_note"]
    assert out["session_wall_s"] == {"run": 2.0}


def test_session_record_lets_a_reader_recompute_every_verdict(tmp_path):
    rng = np.random.default_rng(4)
    results = []
    for i, shift in enumerate([1.2, 0.45, 0.0]):
        results.append(make_result(f"h/test_a.py::t[{i}]", "fam", 4, rng.normal(shift, 1, 30), rng.normal(0, 1, 30),
                                   min_d=0.2, seed=i))
    t = rng.normal(0.6, 1, 25)
    results.append(make_result("h/test_a.py::p[0]", "fam_p", 1, t, t - rng.normal(0.5, 1, 25), paired=True, seed=9))
    results.append(make_result("h/test_a.py::r[0]", "fam_r", 1, rng.normal(0, 1, 60), rng.normal(0, 1, 60),
                               min_d=0.8, seed=3))     # no effect against a large min_d: refuted
    rows, families = rep.finalize(results, "holm")
    settings = {"profile": "ci", "correction": "holm", "alpha": 0.05, "results_dir": str(tmp_path)}
    out = tmp_path / "statistics"
    rep.write_statistics(results, rows, families, settings, out)
    record = prov.session_record(settings=settings, rows=rows, results=results, families=families, root=tmp_path,
                                 data_root=tmp_path / "nodata", command=["pytest", "x"], workers=2,
                                 own_timing={"run": 1.0}, identity=lambda n: {"name": n})
    session = json.loads(json.dumps(record))  # what a reader gets from the file
    assert session["workers"] == 2 and session["command"] == ["pytest", "x"] and session["models"] == {"m": {"name": "m"}}
    by_id = {r["claim_id"]: r for r in rows}
    verdicts = set()
    for rec in session["claims"]:
        again = prov.recompute_verdict(session, out, rec["claim_id"])
        row = by_id[rec["claim_id"]]
        assert again["p_adjusted"] == pytest.approx(row["p_adjusted"], rel=1e-10)
        assert again["p_min_effect_adjusted"] == pytest.approx(row["p_min_effect_adjusted"], rel=1e-10)
        assert again["p_refute_adjusted"] == pytest.approx(row["p_refute_adjusted"], rel=1e-10)
        assert again["verdict"] == row["verdict"] == rec["verdict"]
        verdicts.add(row["verdict"])
    assert verdicts == {"supported", "refuted", "inconclusive"}  # every path recomputed


def test_recompute_covers_directions_and_null_distribution_claims(tmp_path):
    from emocheck import stats

    rng = np.random.default_rng(11)
    base = make_result("h/test_c.py::dirs[0]", "fam_d", 1)
    treated = rng.normal(0.8, 1, 20)
    control = rng.normal(0, 1, (20, 6))
    control[::3, 0] = np.nan  # a subset design
    comp = stats.compare_directions(treated, control, min_d=0.2)
    base.update(kind="directions", comparison=comp.to_dict(), metrics=dict(comp.extra),
                samples={"treated": treated.tolist(), "sample_ids": None,
                         "control": [[None if np.isnan(v) else float(v) for v in row] for row in control]})
    null = rng.normal(0, 1, 99)
    nres = make_result("h/test_c.py::null[0]", "fam_n", 1)
    ncomp = stats.compare_to_null(3.1, null, min_d=0.5)
    nres.update(kind="vs_null", comparison=ncomp.to_dict(), samples={"observed": 3.1, "null": null.tolist()})
    results = [base, nres]
    rows, families = rep.finalize(results, "holm")
    out = tmp_path / "statistics"
    rep.write_statistics(results, rows, families, {"profile": "ci"}, out)
    session = json.loads(json.dumps(prov.session_record(
        settings={"profile": "ci", "results_dir": str(tmp_path)}, rows=rows, results=results, families=families,
        root=tmp_path, data_root=tmp_path, command=[], workers=0, own_timing={}, identity=lambda n: {})))
    for row in rows:
        again = prov.recompute_verdict(session, out, row["claim_id"])
        assert again["d"] == pytest.approx(row["d"], rel=1e-9)
        assert again["p_adjusted"] == pytest.approx(row["p_adjusted"], rel=1e-9)
        assert again["verdict"] == row["verdict"]
