"""benchmarks/compare_sessions.py: verdict differences, the largest d difference, one-sided claims."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import compare_sessions  # noqa: E402


def _write(path, claims):
    path.write_text(json.dumps({"claims": [{"claim_id": k, "verdict": v, "d": d} for k, v, d in claims]}))
    return path


def test_identical_runs_pass(tmp_path, capsys):
    rows = [("c1", "supported", 0.5), ("c2", "not supported", None)]
    a, b = _write(tmp_path / "a.json", rows), _write(tmp_path / "b.json", rows)
    assert compare_sessions.main([str(a), str(b)]) == 0
    assert "2 claims in both, 0 verdicts differ, largest |d| difference 0.00e+00" in capsys.readouterr().out


def test_flips_d_differences_and_missing_claims_are_reported(tmp_path, capsys):
    a = _write(tmp_path / "a.json", [("c1", "supported", 0.50), ("c2", "supported", 0.30), ("c3", "supported", 1.0)])
    b = _write(tmp_path / "b.json", [("c1", "supported", 0.52), ("c2", "not supported", 0.10), ("c4", "supported", 1.0)])
    r = compare_sessions.compare(compare_sessions.load_claims(a), compare_sessions.load_claims(b))
    assert r["common"] == 2 and r["flips"] == [("c2", "supported", "not supported")]
    assert abs(r["max_abs_d_diff"] - 0.2) < 1e-12 and r["max_claim"] == "c2"
    assert r["only_a"] == ["c3"] and r["only_b"] == ["c4"]
    assert compare_sessions.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "verdict c2: supported -> not supported" in out and "only in a: c3" in out


def test_a_d_on_one_side_only_is_a_difference(tmp_path):
    a = _write(tmp_path / "a.json", [("c1", "not supported", None)])
    b = _write(tmp_path / "b.json", [("c1", "not supported", 0.1)])
    r = compare_sessions.compare(compare_sessions.load_claims(a), compare_sessions.load_claims(b))
    assert r["max_abs_d_diff"] == float("inf") and r["max_claim"] == "c1"
    nan = _write(tmp_path / "n.json", [("c1", "not supported", float("nan"))])
    r = compare_sessions.compare(compare_sessions.load_claims(nan), compare_sessions.load_claims(b))
    assert r["max_abs_d_diff"] == float("inf")
    r = compare_sessions.compare(compare_sessions.load_claims(nan), compare_sessions.load_claims(a))
    assert r["max_abs_d_diff"] == 0.0 and r["max_claim"] is None
