"""emocheck.plugin.compare (verdict changes, the largest d difference, regressions against a baseline) and
its thin command-line wrapper benchmarks/compare_sessions.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emocheck.plugin.compare import (BaselineError, claim_fails, compare_sessions, load_verdicts, regression)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import compare_sessions as compare_script  # noqa: E402


def _write(path, claims):
    path.write_text(json.dumps({"claims": [{"claim_id": k, "verdict": v, "d": d} for k, v, d in claims]}))
    return path


def test_identical_runs_pass(tmp_path, capsys):
    rows = [("c1", "supported", 0.5), ("c2", "inconclusive", None)]
    a, b = _write(tmp_path / "a.json", rows), _write(tmp_path / "b.json", rows)
    assert compare_script.main([str(a), str(b)]) == 0
    assert "2 claims in both, 0 verdicts differ, largest |d| difference 0.00e+00" in capsys.readouterr().out
    r = compare_sessions(a, b)
    assert not r.changed and not r.regressed and r.table() == "no verdict changed"


def test_flips_d_differences_and_missing_claims_are_reported(tmp_path, capsys):
    a = _write(tmp_path / "a.json", [("c1", "supported", 0.50), ("c2", "supported", 0.30), ("c3", "supported", 1.0)])
    b = _write(tmp_path / "b.json", [("c1", "supported", 0.52), ("c2", "inconclusive", 0.10), ("c4", "supported", 1.0)])
    r = compare_sessions(a, b)
    assert r.common == 2 and r.flips == [("c2", "supported", "inconclusive")]
    assert abs(r.max_abs_d_diff - 0.2) < 1e-12 and r.max_claim == "c2"
    assert r.only_a == ["c3"] and r.only_b == ["c4"]
    assert r.changed and r.regressed and [c.claim_id for c in r.regressions] == ["c2"]
    # the regression is listed first; c3 (not run now) and c4 (new, not refuted) are listed, not failed
    assert [c.claim_id for c in r.changes] == ["c2", "c3", "c4"]
    assert "FAILS" in r.table().splitlines()[2] and "was supported, now inconclusive" in r.table()
    assert compare_script.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "verdict c2: supported -> inconclusive" in out and "only in a: c3" in out
    assert "1 fail against the baseline" in out


def test_a_d_on_one_side_only_is_a_difference(tmp_path):
    a = _write(tmp_path / "a.json", [("c1", "inconclusive", None)])
    b = _write(tmp_path / "b.json", [("c1", "inconclusive", 0.1)])
    r = compare_sessions(a, b)
    assert r.max_abs_d_diff == float("inf") and r.max_claim == "c1"
    nan = _write(tmp_path / "n.json", [("c1", "inconclusive", float("nan"))])
    assert compare_sessions(nan, b).max_abs_d_diff == float("inf")
    r = compare_sessions(nan, a)
    assert r.max_abs_d_diff == 0.0 and r.max_claim is None


@pytest.mark.parametrize("before, after, registration, fails", [
    ("supported", "supported", None, False),
    ("supported", "inconclusive", None, True),
    ("supported", "refuted", None, True),
    ("supported", "error", None, True),
    ("refuted", "supported", None, True),
    ("refuted", "inconclusive", None, False),
    ("inconclusive", "supported", None, False),
    ("inconclusive", "refuted", "exploratory", False),
    ("inconclusive", "refuted", "pre-registered", True),
    (None, "refuted", "pre-registered", True),
    (None, "refuted", "exploratory", False),
    (None, "supported", "pre-registered", False),
    ("supported", None, None, False),             # not run now (a -k subset): listed only
    ("not supported", "refuted", "pre-registered", False),   # a record from before the three verdicts
    ("not supported", "inconclusive", None, False),
    ("not supported", "supported", None, False),
])
def test_the_regression_rule(before, after, registration, fails):
    assert regression(before, after, registration)[0] is fails


def test_the_fail_on_policies():
    assert [claim_fails(v, "refuted") for v in ("supported", "refuted", "inconclusive")] == [False, True, False]
    assert [claim_fails(v, "inconclusive") for v in ("supported", "refuted", "inconclusive")] == [False, True, True]
    assert claim_fails("refuted", "changed", before="refuted") is False
    assert claim_fails("inconclusive", "changed", before="supported") is True
    with pytest.raises(ValueError, match="fail-on policy"):
        claim_fails("refuted", "never")


def test_the_lock_with_expected_verdicts_is_a_baseline(tmp_path):
    lock = tmp_path / "preregistration.json"
    lock.write_text(json.dumps({"format": "emocheck-preregistration", "version": 1, "profiles": {"ci": {"claims": {
        "c1": {"hash": "x", "expected_verdict": "supported"}, "c2": {"hash": "y"}}}}}))
    assert load_verdicts(lock) == {"c1": {"verdict": "supported", "d": None, "registration": "pre-registered"}}
    with pytest.raises(BaselineError, match="without an entry for profile 'full'"):
        load_verdicts(lock, "full")
    now = _write(tmp_path / "now.json", [("c1", "inconclusive", 0.1), ("c2", "refuted", 0.0)])
    r = compare_sessions(lock, now, "ci")
    assert r.regressed and [c.claim_id for c in r.regressions] == ["c1"]


def test_bad_baselines_say_what_to_pass(tmp_path):
    with pytest.raises(BaselineError, match="does not exist"):
        load_verdicts(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BaselineError, match="not readable JSON"):
        load_verdicts(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{\"x\": 1}")
    with pytest.raises(BaselineError, match="session.json"):
        load_verdicts(tmp_path / "other.json")
