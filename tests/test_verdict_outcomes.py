"""The three verdicts as pytest outcomes, the exit policy (--emocheck-fail-on) and the baseline
(--emocheck-baseline), end to end with pytester: terminal summary, exit status, effect_sizes.csv, report.md,
$GITHUB_STEP_SUMMARY, JUnit, session.json, and the same outcomes with -n 0 and -n 2."""
from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["pytester"]

# Paired samples whose d_z is exactly the asked value, so every verdict is known in advance:
# d 1.0 against min_d 0.2 (n 60): supported; d 0 against min_d 0.5 (n 60): refuted (upper bound ~0.22);
# d 0.3 against min_d 0.5 with 8 pairs: inconclusive. ECP_SHIFT lowers the supported claim's effect to
# 1.0 - shift (0.85: d 0.15, inconclusive) to change the study between two runs.
STUDY = '''
import os
import numpy as np
from emocheck.plugin.claims import claim

def at(d, n=60):
    z = np.linspace(-1, 1, n)
    return (z - z.mean()) / z.std(ddof=1) + d

@claim("a clear effect", family="v_sup", paired=True, min_d=0.2)
def test_supported(evidence):
    shift = float(os.environ.get("ECP_SHIFT", "0"))
    evidence.record(treated=at(1.0 - shift), control=np.zeros(60))

@claim("no effect", family="v_ref", paired=True, min_d=0.5)
def test_refuted(evidence):
    evidence.record(treated=at(0.0), control=np.zeros(60))

@claim("too few pairs to tell", family="v_inc", paired=True, min_d=0.5)
def test_inconclusive(evidence):
    evidence.record(treated=at(0.3, n=8), control=np.zeros(8))
'''

UNDECIDED_ONLY = '''
import numpy as np
from emocheck.plugin.claims import claim

def at(d, n=60):
    z = np.linspace(-1, 1, n)
    return (z - z.mean()) / z.std(ddof=1) + d

@claim("a clear effect", family="w_sup", paired=True, min_d=0.2)
def test_supported(evidence):
    evidence.record(treated=at(1.0), control=np.zeros(60))

@claim("too few pairs to tell", family="w_inc", paired=True, min_d=0.5)
def test_inconclusive(evidence):
    evidence.record(treated=at(0.3, n=8), control=np.zeros(8))
'''


@pytest.fixture
def run(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS", "ECP_SHIFT"):
        monkeypatch.delenv(var, raising=False)
    import emocheck

    root = str(Path(emocheck.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))

    def _run(*args, results="results"):
        # In a subprocess: after an in-process MLflow session in the same xdist worker
        # (tests/test_tracking.py), importlib.metadata finds no distribution in this process any more, so
        # in-process runs lose the plugin's entry point.
        argv = ["--emocheck-results", str(pytester.path / results), "-p", "no:cacheprovider",
                "-p", "no:hypothesispytest", *args]
        return pytester.runpytest_subprocess(*argv)

    return _run


def _stats(pytester, results="results") -> Path:
    return pytester.path / results / "ci" / "statistics"


def _verdicts(pytester, results="results") -> dict[str, str]:
    df = pd.read_csv(_stats(pytester, results) / "effect_sizes.csv")
    return dict(zip(df.short_id, df.verdict))


def test_three_outcomes_in_the_terminal_summary_and_the_files(pytester, run):
    pytester.makepyfile(test_ecp_v=STUDY)
    result = run("-v", "--junitxml", "junit.xml")
    # supported passes, refuted fails (the default policy), inconclusive is its own outcome, not a failure
    result.assert_outcomes(passed=1, failed=1)
    assert result.parseoutcomes()["inconclusive"] == 1
    assert result.ret == 1
    result.stdout.fnmatch_lines_random([
        "*test_ecp_v.py::test_supported PASSED*",
        "*test_ecp_v.py::test_refuted REFUTED*",
        "*test_ecp_v.py::test_inconclusive INCONCLUSIVE*",
        "*1 supported, 1 refuted, 1 inconclusive of 3 claims; the run fails on: refuted*",
        "*= 1 failed, 1 passed, 1 inconclusive in *",
    ])
    # the short summary letters without -v: . F i
    result = run()
    result.stdout.fnmatch_lines(["test_ecp_v.py [.Fi][.Fi][.Fi]*"])
    assert sorted(result.stdout.lines[[i for i, l in enumerate(result.stdout.lines)
                                       if l.startswith("test_ecp_v.py")][0]].split()[1]) == [".", "F", "i"]

    df = pd.read_csv(_stats(pytester) / "effect_sizes.csv").set_index("short_id")
    assert df.verdict.to_dict() == {"test_ecp_v::test_inconclusive": "inconclusive",
                                    "test_ecp_v::test_refuted": "refuted", "test_ecp_v::test_supported": "supported"}
    inc = df.loc["test_ecp_v::test_inconclusive"]
    # the n that decides it: at the observed d (0.3 < min_d 0.5: refute) and if d = 0, both above its 8 pairs
    assert inc.n_decide_at_observed > inc.n_refute_if_d0 > 8
    assert df.loc["test_ecp_v::test_refuted", "d_bound_refute_adjusted"] < 0.5
    assert df.loc["test_ecp_v::test_supported", "d_bound_adjusted"] > 0.2
    import csv

    raw = {r["short_id"]: r for r in csv.DictReader((_stats(pytester) / "effect_sizes.csv").open())}
    assert raw["test_ecp_v::test_inconclusive"]["n_decide_at_observed"].isdigit()   # an integer, not 123.0
    assert raw["test_ecp_v::test_refuted"]["n_decide_at_observed"] == ""
    power = pd.read_csv(_stats(pytester) / "power_analysis.csv").set_index("short_id")
    assert power.loc["test_ecp_v::test_inconclusive", "n_refute_if_d0"] == inc.n_refute_if_d0

    md = (_stats(pytester) / "report.md").read_text()
    assert "**1 supported, 1 refuted, 1 inconclusive of 3 claims**" in md and "p(d<min_d) corr" in md
    session = json.loads((_stats(pytester) / "session.json").read_text())
    assert {c["claim_id"]: c["verdict"] for c in session["claims"]} == {
        "test_ecp_v.py::test_inconclusive": "inconclusive", "test_ecp_v.py::test_refuted": "refuted",
        "test_ecp_v.py::test_supported": "supported"}
    assert session["settings"]["fail_on"] == "refuted" and session["settings"]["baseline"] is None


def test_junit_carries_the_verdict_and_fails_only_refuted(pytester, run):
    pytester.makepyfile(test_ecp_v=STUDY)
    run("--junitxml", "junit.xml")
    root = ET.parse(pytester.path / "junit.xml").getroot()
    suite = next(root.iter("testsuite"))
    assert suite.get("failures") == "1" and suite.get("tests") == "3"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    for name, verdict in (("test_supported", "supported"), ("test_refuted", "refuted"),
                          ("test_inconclusive", "inconclusive")):
        props = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
        assert props["emocheck_verdict"] == verdict and props["emocheck_verdict_uncorrected"] == verdict
        assert (cases[name].find("failure") is not None) == (verdict == "refuted")
    props = {p.get("name"): p.get("value") for p in cases["test_inconclusive"].iter("property")}
    assert int(props["emocheck_n_refute_if_d0"]) > 8 and float(props["emocheck_p_refute_adjusted"]) > 0.05


@pytest.mark.parametrize("how", ["option", "ini"])
def test_fail_on_inconclusive_fails_everything_not_supported(pytester, run, how):
    pytester.makepyfile(test_ecp_w=UNDECIDED_ONLY)
    result = run()
    assert result.ret == 0          # supported + inconclusive: nothing refuted, the default passes
    result.assert_outcomes(passed=1)
    if how == "ini":
        pytester.makeini("[pytest]\nemocheck_fail_on = inconclusive\n")
        result = run("--junitxml", "junit.xml")
    else:
        result = run("--emocheck-fail-on", "inconclusive", "--junitxml", "junit.xml")
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ClaimInconclusive: claim inconclusive*", "*the run fails on: inconclusive*"])
    suite = next(ET.parse(pytester.path / "junit.xml").getroot().iter("testsuite"))
    assert suite.get("failures") == "1"


def test_fail_on_changed_needs_a_baseline_and_a_bad_baseline_is_one_error(pytester, run):
    pytester.makepyfile(test_ecp_v=STUDY)
    result = run("--emocheck-fail-on", "changed")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--emocheck-fail-on changed needs a baseline*"])
    result = run("--emocheck-baseline", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baseline*missing.json does not exist*session.json*"])
    assert not (pytester.path / "results" / "ci" / "statistics").exists()   # nothing ran


def test_an_unchanged_study_passes_against_its_baseline_and_a_change_is_listed_first(pytester, run, monkeypatch):
    pytester.makepyfile(test_ecp_v=STUDY)
    first = run()
    assert first.ret == 1                      # one claim is refuted: fails without a baseline
    baseline = pytester.path / "baseline_session.json"
    shutil.copy(_stats(pytester) / "session.json", baseline)

    # run twice against the baseline: nothing changed, exit 0 (a refuted claim that stays refuted is a finding)
    for _ in range(2):
        result = run("--emocheck-baseline", str(baseline), "--junitxml", "junit.xml")
        assert result.ret == 0, result.stdout.str()
        result.assert_outcomes(passed=1)
        outcomes = result.parseoutcomes()
        assert outcomes["refuted"] == 1 and outcomes["inconclusive"] == 1
        result.stdout.fnmatch_lines(["*against the baseline*3 claims in both, 0 verdicts differ*",
                                     "*the run fails on: changed against*baseline_session.json*"])
    suite = next(ET.parse(pytester.path / "junit.xml").getroot().iter("testsuite"))
    assert suite.get("failures") == "0"
    session = json.loads((_stats(pytester) / "session.json").read_text())
    assert session["baseline"]["changed"] is False and session["settings"]["fail_on"] == "changed"

    # the supported claim loses its effect: inconclusive now, a regression; listed first everywhere
    monkeypatch.setenv("ECP_SHIFT", "0.85")
    summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run("--emocheck-baseline", str(baseline))
    assert result.ret == 1
    # the regression fails; the refuted claim (unchanged) and the inconclusive one keep their own outcomes
    assert result.parseoutcomes() == {"failed": 1, "refuted": 1, "inconclusive": 1}
    result.stdout.fnmatch_lines([
        "*emocheck: claims*",
        "*against the baseline*1 verdicts differ*1 fail against the baseline*",
        "*test_ecp_v.py::test_supported*supported*inconclusive*FAILS*was supported, now inconclusive*",
    ])
    result.stdout.fnmatch_lines(["*ClaimNotSupported: verdict changed against the baseline (was supported, "
                                 "now inconclusive)*"])
    md = (_stats(pytester) / "report.md").read_text()
    first_section = md.split("\n## ")[1]
    assert first_section.startswith("Verdict changes against the baseline")
    assert "was supported, now inconclusive" in first_section
    assert md.index("Verdict changes against the baseline") < md.index("## Session") < md.index("## Claims")
    step = summary.read_text()
    assert step.index("was supported, now inconclusive") < step.index("## Claims")
    assert _verdicts(pytester)["test_ecp_v::test_supported"] == "inconclusive"

    # an explicit policy still wins over the baseline's default, and the changes are listed anyway
    result = run("--emocheck-baseline", str(baseline), "--emocheck-fail-on", "refuted")
    assert result.ret == 1
    result.assert_outcomes(failed=1)                # the refuted claim
    assert result.parseoutcomes()["inconclusive"] == 2
    assert "Verdict changes against the baseline" in (_stats(pytester) / "report.md").read_text()


def test_a_lock_with_expected_verdicts_is_a_baseline(pytester, run):
    pytester.makepyfile(test_ecp_v=STUDY)
    lock = pytester.path / "expected.json"
    lock.write_text(json.dumps({"format": "emocheck-preregistration", "version": 1, "profiles": {"ci": {"claims": {
        "test_ecp_v.py::test_supported": {"hash": "-", "expected_verdict": "supported"},
        "test_ecp_v.py::test_refuted": {"hash": "-", "expected_verdict": "refuted"}}}}}))
    result = run("--emocheck-baseline", str(lock))
    assert result.ret == 0
    lock.write_text(lock.read_text().replace('"expected_verdict": "refuted"', '"expected_verdict": "supported"'))
    result = run("--emocheck-baseline", str(lock))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*test_ecp_v.py::test_refuted*supported*refuted*FAILS*was supported, now refuted*"])


def test_the_same_outcomes_with_and_without_xdist(pytester, run):
    pytester.makepyfile(test_ecp_v=STUDY)
    seen = {}
    for label, extra in (("n0", ["-n", "0"]), ("n2", ["-n", "2"])):
        result = run(*extra, results=f"results_{label}")
        frame = pd.read_csv(_stats(pytester, f"results_{label}") / "effect_sizes.csv")
        keep = [c for c in frame.columns if c not in ("samples_file",)]
        seen[label] = (result.ret, result.parseoutcomes(), frame[keep])
    assert seen["n0"][0] == seen["n2"][0] == 1
    assert seen["n0"][1] == seen["n2"][1] == {"failed": 1, "passed": 1, "inconclusive": 1}
    pd.testing.assert_frame_equal(seen["n0"][2], seen["n2"][2])
