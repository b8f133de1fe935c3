"""End-to-end tests of the emocheck pytest plugin on synthetic claims (no models).

Each test writes a small hypotheses module into a pytester directory and runs pytest on it, with
the toy model list ``--emocheck-models a,b``.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emocheck import stats
from emocheck.plugin.claims import Evidence, claim
from emocheck.errors import ConfigError, EvidenceError

pytest_plugins = ["pytester"]

TOY = '''
import numpy as np
import pytest
from emocheck.plugin.claims import claim

def rng(*key):
    return np.random.default_rng([sum(map(ord, str(k))) for k in key])

@claim("a big effect on {model_name}", family="toy_main", min_d=0.5)
def test_big(model_name, evidence):
    r = rng("big", model_name)
    evidence.record(treated=r.normal(2.0, 1.0, 40), control=r.normal(0.0, 1.0, 40),
                    metrics={"auc": np.float32(0.91), "layer": 3, "note": "toy"})

@claim("no effect on {model_name}", family="toy_main", paired=True, min_d=0.2)
def test_null(model_name, evidence):
    r = rng("null", model_name)
    evidence.record(treated=r.normal(0.0, 1.0, 30), control=r.normal(0.0, 1.0, 30))

@claim("records nothing", family="toy_errors")
def test_nothing(model_name, evidence):
    pass

@claim("too few samples", family="toy_errors")
def test_few(model_name, evidence):
    evidence.record(treated=[1.0, 2.0], control=[0.0, 1.0, 0.5])
'''


@pytest.fixture
def run(pytester, monkeypatch):
    """Run pytest in-process on the pytester dir, results in ./results; no leaking env."""
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    # Subprocess runs (xdist) must import the emocheck under test, not another installed copy.
    import os

    import emocheck

    root = str(Path(emocheck.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))

    def _run(*args, subprocess=False):
        argv = ["--emocheck-results", str(pytester.path / "results"), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args]
        if subprocess:
            return pytester.runpytest_subprocess(*argv)
        return pytester.runpytest(*argv)

    return _run


def _stats_dir(pytester, profile="ci") -> Path:
    return pytester.path / "results" / profile / "statistics"


def _effects(pytester, profile="ci") -> pd.DataFrame:
    return pd.read_csv(_stats_dir(pytester, profile) / "effect_sizes.csv").set_index("claim_id")


# ----------------------------------------------------------------------------------------------
# The whole flow on a toy hypotheses module
# ----------------------------------------------------------------------------------------------


def test_toy_session_reports_verdicts_files_and_exit_status(pytester, run):
    pytester.makepyfile(test_ecp_toy=TOY)
    result = run("--emocheck-models", "a,b", "--junitxml", "junit.xml")

    # big effect supported (passes), no effect: refuted on b (fails), inconclusive on a (its own outcome,
    # not a failure), nothing recorded / too few -> ERROR
    result.assert_outcomes(passed=2, failed=1, errors=4)
    assert result.parseoutcomes()["inconclusive"] == 1
    assert result.ret == 1
    out = result.stdout.str()
    assert "emocheck: claims" in out
    result.stdout.fnmatch_lines([
        "*claim*model*statement*n (t/c)*d [[]raw CI[]]*adj. bounds*p raw*p corr*p(d>min_d) corr*p(d<min_d) corr*"
        "d80 at a/m*n to decide (obs/d=0)*verdict*",
        "*test_ecp_toy::test_big[[]a[]]*a big effect on a*40/40*supported*",
        "*test_ecp_toy::test_null[[]a[]]*no effect on a*30/30*/*inconclusive: raw interval does not clear*",
        "*test_ecp_toy::test_null[[]b[]]*no effect on b*30/30*refuted: d < 0.2 shown*",
        "*toy_errors*4*0*test_ecp_toy.py*",
        "*toy_main*4*4*test_ecp_toy.py*",
    ])
    result.stdout.fnmatch_lines([
        "*ERROR at call of test_nothing[[]a[]]*",
        "E *EvidenceError: claim test finished without recording evidence*",
        "*ERROR at call of test_few[[]a[]]*",
        "E *EvidenceError: cannot judge the claim: treated has 2 value(s); at least 3 are needed*",
        "*_ test_null[[]b[]] _*",
        "E *ClaimRefuted: claim refuted (before correction): d = *CI*p = *p(d>0.2) = *p(d<0.2) = *",
    ])
    result.stdout.fnmatch_lines(["*2 supported, 1 refuted, 1 inconclusive, 4 error of 8 claims; the run fails on: "
                                 "refuted*"])

    d = _stats_dir(pytester)
    eff = _effects(pytester)
    assert len(eff) == 8
    for col in ("d", "d_ci_low", "d_ci_high", "p_value", "p_min_effect", "p_adjusted", "p_min_effect_adjusted",
                "p_bonferroni", "p_holm", "p_bh", "p_min_effect_bh", "detectable_d_80", "n_required_excess_0.2",
                "n_required_excess_0.3", "n_required_excess_0.5", "d_bound_adjusted", "family_declared", "family_run", "verdict",
                "verdict_uncorrected", "metric_auc", "metric_layer", "metric_note", "statement", "model"):
        assert col in eff.columns, col
    big = eff.loc["test_ecp_toy.py::test_big[a]"]
    assert big["verdict"] == "supported" and big["d"] > 1.0 and big["n_treated"] == 40
    assert big["metric_auc"] == pytest.approx(0.91, abs=1e-6) and big["metric_layer"] == 3
    assert big["statement"] == "a big effect on a"
    assert eff.loc["test_ecp_toy.py::test_null[a]", "verdict"] == "inconclusive"
    assert eff.loc["test_ecp_toy.py::test_null[b]", "verdict"] == "refuted"
    for col in ("p_refute", "p_refute_adjusted", "p_refute_holm", "d_bound_refute_adjusted", "n_decide_at_observed",
                "n_refute_if_d0"):
        assert col in eff.columns, col
    inconclusive = eff.loc["test_ecp_toy.py::test_null[a]"]
    assert inconclusive.n_decide_at_observed > 30 and inconclusive.n_refute_if_d0 > 30
    assert pd.isna(eff.loc["test_ecp_toy.py::test_null[b]", "n_decide_at_observed"])   # decided: no n needed
    assert pd.isna(big["n_refute_if_d0"])
    assert eff.loc["test_ecp_toy.py::test_few[b]", "status"] == "error"
    assert "at least 3" in eff.loc["test_ecp_toy.py::test_few[b]", "error"]
    assert (eff.loc[eff.family == "toy_main", "family_declared"] == 4).all()

    # every number can be recomputed from the per-sample file
    samples = pd.read_csv(d / big["samples_file"])
    assert list(samples.columns) == ["sample_id", "treated", "control"]
    again = stats.compare(samples.treated.dropna(), samples.control.dropna(), min_d=0.5)
    assert again.d == pytest.approx(big["d"], rel=1e-12)
    assert again.p_value == pytest.approx(big["p_value"], rel=1e-9)
    paired = pd.read_csv(d / eff.loc["test_ecp_toy.py::test_null[b]", "samples_file"])
    assert list(paired.columns) == ["sample_id", "treated", "control", "difference"]

    power = pd.read_csv(d / "power_analysis.csv")
    assert set(power.claim_id) == {f"test_ecp_toy.py::test_{t}[{m}]" for t in ("big", "null") for m in "ab"}
    assert {"n_treated", "d", "planning_level", "detectable_d_80", "n_required_excess_0.2", "n_required_excess_0.3",
            "n_required_excess_0.5", "n_unit"} <= set(power.columns)
    pj = json.loads((d / "power_analysis.json").read_text())
    assert len(pj["claims"]) == 4 and pj["settings"]["correction"] == "holm"
    assert [p.read_bytes()[:4] for p in d.glob("forest_*.png")] == [b"\x89PNG"]  # one family: one figure
    assert (d / "report.html").is_file() and (d / "session.json").is_file()
    md = (d / "report.md").read_text()
    assert "| claim" in md and "How the verdict is reached" in md and "holm" in md

    # JUnit carries the raw and the corrected numbers
    root = ET.parse(pytester.path / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_big[a]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(props["emocheck_d"]) == pytest.approx(big["d"], rel=1e-5)
    assert props["emocheck_verdict_uncorrected"] == "supported"
    assert props["emocheck_verdict"] == "supported"
    assert float(props["emocheck_p_adjusted"]) == pytest.approx(big["p_adjusted"], rel=1e-5)
    assert props["emocheck_d_ci"].startswith("[")
    verdicts = {}
    for name in ("test_null[a]", "test_null[b]"):
        case = next(c for c in root.iter("testcase") if c.get("name") == name)
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        verdicts[name] = (props["emocheck_verdict"], case.find("failure") is not None)
        assert props["emocheck_fail_on"] == "refuted" and "emocheck_p_refute_adjusted" in props
    assert verdicts == {"test_null[a]": ("inconclusive", False), "test_null[b]": ("refuted", True)}
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_null[a]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert int(props["emocheck_n_decide_at_observed"]) == inconclusive.n_decide_at_observed


def test_all_supported_exits_zero_and_github_summary(pytester, run, monkeypatch):
    summary = pytester.path / "step_summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_ecp_ok='''
import numpy as np
from emocheck.plugin.claims import claim

@claim("gratitude beats neutral on {model_name}", family="ok", alternative="less", min_d=0.3)
def test_less(model_name, evidence):
    r = np.random.default_rng(len(model_name))
    evidence.record(treated=r.normal(-1.5, 1, 50), control=r.normal(0, 1, 50))
''')
    result = run("--emocheck-models", "a,b")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    text = summary.read_text()
    assert text.startswith("previous step\n") and "emocheck statistics report" in text


# ----------------------------------------------------------------------------------------------
# Corrections follow the declared family
# ----------------------------------------------------------------------------------------------

FAMILY = '''
import numpy as np
import pytest
from scipy import stats as st
from emocheck.plugin.claims import claim

N = 20
P_RAW = 0.02   # one-sided paired p of every member: significant alone, not after correcting for 5

def shifted(p):
    z = np.linspace(-1.0, 1.0, N)
    z = (z - z.mean()) / z.std(ddof=1)           # mean 0, sd 1 exactly
    d_z = st.t.isf(p, N - 1) / np.sqrt(N)
    return z + d_z

@claim("member {k}", family="five", paired=True)
@pytest.mark.parametrize("k", ["e0", "e1", "e2"])
def test_member(model_name, k, evidence):
    evidence.record(treated=shifted(P_RAW), control=np.zeros(N))

@claim("other member {k}", family="five", paired=True)
@pytest.mark.parametrize("k", ["e3", "e4"])
def test_other(model_name, k, evidence):
    evidence.record(treated=shifted(P_RAW), control=np.zeros(N))

def test_plain_unit_test():
    assert True
'''


@pytest.mark.parametrize("selection", [["-k", "e0"], ["test_ecp_family.py::test_other"]],
                         ids=["keyword", "nodeid"])
def test_subset_is_corrected_for_the_declared_family(pytester, run, selection):
    pytester.makepyfile(test_ecp_family=FAMILY)
    result = run("--emocheck-models", "a", "--junitxml", "junit.xml", *selection)
    eff = _effects(pytester)
    ran = 1 if selection[0] == "-k" else 2
    assert len(eff) == ran
    assert (eff.family_declared == 5).all() and (eff.family_run == ran).all()
    for claim_id, row in eff.iterrows():
        assert row["p_value"] == pytest.approx(0.02, rel=1e-6)
        expected = stats.adjust_pvalues([row["p_value"]] * ran, "holm", n_tests=5)[0]
        assert row["p_adjusted"] == pytest.approx(expected, rel=1e-9)
        assert row["p_adjusted"] > row["p_value"]
        assert row["p_bonferroni"] == pytest.approx(min(1, 5 * 0.02), rel=1e-6)
        # supported on its own, not after the correction -> inconclusive (its own outcome, not a failure)
        assert row["verdict_uncorrected"] == "supported"
        assert row["verdict"] == "inconclusive"
    outcomes = result.parseoutcomes()
    assert outcomes["inconclusive"] == ran and "failed" not in outcomes and "passed" not in outcomes
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*INCONCLUSIVE after holm correction (supported before)*",
                                 f"*{ran} inconclusive*"])
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    assert next(junit.iter("testsuite")).get("failures") == "0"
    case = next(c for c in junit.iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["emocheck_verdict_uncorrected"] == "supported"
    assert props["emocheck_verdict"] == "inconclusive"
    assert case.find("failure") is None


@pytest.mark.parametrize("selection", [["-k", "e0"], ["test_ecp_family.py::test_other"]],
                         ids=["keyword", "nodeid"])
def test_failing_on_inconclusive_fails_the_claims_the_correction_left_undecided(pytester, run, selection):
    """--emocheck-fail-on inconclusive: a claim that passed on the worker and is inconclusive after the
    correction becomes a failure at session end (terminal, exit status, JUnit)."""
    pytester.makepyfile(test_ecp_family=FAMILY)
    result = run("--emocheck-models", "a", "--junitxml", "junit.xml", "--emocheck-fail-on", "inconclusive",
                 *selection)
    ran = 1 if selection[0] == "-k" else 2
    result.assert_outcomes(failed=ran)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*INCONCLUSIVE after holm correction (supported before)*",
                                 "*1 failed*" if ran == 1 else "*2 failed*"])
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    assert next(junit.iter("testsuite")).get("failures") == str(ran)
    case = next(c for c in junit.iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["emocheck_verdict"] == "inconclusive" and props["emocheck_fail_on"] == "inconclusive"
    assert case.find("failure") is not None


def test_whole_family_with_bh_and_without_correction_needed(pytester, run):
    pytester.makepyfile(test_ecp_family=FAMILY)
    result = run("--emocheck-models", "a", "--emocheck-correction", "bh", "--emocheck-alpha", "0.2")
    eff = _effects(pytester)
    assert len(eff) == 5 and (eff.family_run == 5).all()
    # five equal p = 0.02: BH leaves them at 0.02, Holm multiplies by 5
    assert np.allclose(eff.p_bh, 0.02) and np.allclose(eff.p_holm, 0.1) and np.allclose(eff.p_adjusted, 0.02)
    assert (eff.verdict == "supported").all() and (eff.correction == "bh").all()
    result.assert_outcomes(passed=6)
    assert result.ret == 0


def test_family_in_two_modules_is_a_usage_error(pytester, run):
    pytester.makepyfile(
        test_ecp_one='from emocheck.plugin.claims import claim\n@claim("x", family="shared")\ndef test_a(evidence):\n    pass\n',
        test_ecp_two='from emocheck.plugin.claims import claim\n@claim("y", family="shared")\ndef test_b(evidence):\n    pass\n',
    )
    result = run("-k", "test_a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*family 'shared' is declared in test_ecp_one.py, test_ecp_two.py*"])


# ----------------------------------------------------------------------------------------------
# Errors, parametrisation, options
# ----------------------------------------------------------------------------------------------


def test_misuse_is_an_error_with_a_clear_message(pytester, run):
    pytester.makepyfile(test_ecp_misuse='''
from emocheck.plugin.claims import claim

def test_evidence_without_claim(evidence):
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])

@claim("twice", family="m")
def test_twice(evidence):
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])

@claim("paired lengths", family="m", paired=True)
def test_paired_lengths(evidence):
    evidence.record(treated=[1, 2, 3, 4], control=[0, 1, 2])

@claim("not finite", family="m")
def test_nan(evidence):
    evidence.record(treated=[1, 2, float("nan"), 4], control=[0, 1, 2])

@claim("no fixture", family="m")
def test_no_fixture():
    pass
''')
    result = run()
    result.assert_outcomes(errors=5)
    assert result.ret == 1
    result.stdout.fnmatch_lines_random([
        "E * test_ecp_misuse.py::test_evidence_without_claim uses the `evidence` fixture but has no @claim(...) marker*",
        "E * evidence was recorded twice in test_ecp_misuse.py::test_twice*",
        "E * the claim is paired but treated has 4 values and control has 3*",
        "E * treated contains 1 non-finite value(s)*",
        "E * claim test finished without recording evidence: request the `evidence` fixture*",
    ])


def test_claim_arguments_are_validated_at_decoration():
    with pytest.raises(ConfigError, match="alternative"):
        claim("s", family="f", alternative="bigger")
    with pytest.raises(ConfigError, match="negative"):
        claim("s", family="f", min_d=-0.2)
    with pytest.raises(ConfigError, match="alpha"):
        claim("s", family="f", alpha=0.7)
    with pytest.raises(ConfigError, match="family"):
        claim("s", family="")
    marker = claim("s {x}", family="f", min_d=0.3)
    assert marker.mark.name == "emocheck_claim"
    assert marker.mark.kwargs == {"statement": "s {x}", "family": "f", "paired": False,
                                  "alternative": "greater", "min_d": 0.3, "alpha": None}


def test_evidence_converts_arrays_and_metrics():
    ev = Evidence("x", None)
    ev.record(treated=np.array([[1.0], [2.0], [3.0]]), control=(0, 1, 2),
              metrics={"auc": np.float64(0.5), "layer": np.int64(4), "one": np.array([2.5]), "s": "txt"})
    assert ev.treated == [1.0, 2.0, 3.0] and all(type(v) is float for v in ev.control)
    assert ev.metrics == {"auc": 0.5, "layer": 4, "one": 2.5, "s": "txt"}
    assert type(ev.metrics["layer"]) is int
    with pytest.raises(EvidenceError, match="single number"):
        Evidence().record(treated=[1, 2, 3], control=[1, 2, 3], metrics={"v": np.ones(3)})
    import torch

    ev = Evidence()
    ev.record(treated=torch.tensor([1.0, 2.0, 3.0], requires_grad=True),
              control=torch.tensor([0.0, 1.0, 2.0], dtype=torch.bfloat16), metrics={"auc": torch.tensor(0.75)})
    assert ev.treated == [1.0, 2.0, 3.0] and ev.control == [0.0, 1.0, 2.0] and ev.metrics == {"auc": 0.75}
    assert type(ev.metrics["auc"]) is float


def test_model_name_parametrised_over_profile_models_and_k_selects(pytester, run):
    pytester.makepyfile(test_ecp_models='''
import pytest

def test_uses_model(model_name, emocheck_profile):
    assert model_name in emocheck_profile.models

@pytest.mark.parametrize("model_name", ["own"])
def test_own_param(model_name):
    assert model_name == "own"
''')
    result = run("--collect-only", "-q", "-k", "gemma")
    result.stdout.fnmatch_lines(["test_ecp_models.py::test_uses_model[[]gemma3-270m[]]"])
    assert "smollm2" not in result.stdout.str()
    result = run("--emocheck-models", "x,y", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines_random(["*test_uses_model[[]x[]] PASSED*", "*test_uses_model[[]y[]] PASSED*",
                                        "*test_own_param[[]own[]] PASSED*"])


def test_xdist_group_marker_and_profile_options(pytester, run):
    pytester.makepyfile(test_ecp_m='def test_x(model_name):\n    pass\n')
    items, _ = pytester.inline_genitems("--emocheck-models", "a,b", "--emocheck-results", "r")
    groups = {i.callspec.params["model_name"]: i.get_closest_marker("xdist_group").kwargs["name"] for i in items}
    assert groups == {"a": "a", "b": "b"}

    result = run("--emocheck-profile", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'nope'*"])
    pytester.makeini("[pytest]\nemocheck_profile = smoke\nemocheck_alpha = 0.01\n")
    result = run("--collect-only")
    result.stdout.fnmatch_lines(["*emocheck: profile smoke (models: smollm2-135m)*alpha 0.01*",
                                 "*<Function test_x[[]smollm2-135m[]]>*"])


# ----------------------------------------------------------------------------------------------
# xdist: identical numbers with no -n, -n 1 and -n 2
# ----------------------------------------------------------------------------------------------

XDIST = '''
import os
import numpy as np
import pytest
from emocheck.plugin.claims import claim

def rng(*key):
    return np.random.default_rng([sum(map(ord, str(k))) for k in key])

def where():
    return {"results_dir": os.environ["EMOCHECK_RESULTS_DIR"], "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}

@claim("{emotion} separates on {model_name}", family="sep", min_d=0.3)
@pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
def test_sep(model_name, emotion, evidence):
    r = rng(model_name, emotion)
    evidence.record(treated=r.normal(0.8, 1, 25), control=r.normal(0, 1, 25), metrics=where())

@claim("{emotion} steering shifts politeness on {model_name}", family="steer", paired=True, min_d=0.2)
@pytest.mark.parametrize("emotion", ["gratitude", "apology"])
def test_steer(model_name, emotion, evidence):
    r = rng("steer", model_name, emotion)
    base = r.normal(0, 1, 30)
    evidence.record(treated=base + r.normal(0.6, 1, 30), control=base, metrics=where())

@claim("the vector beats random directions on {model_name}", family="dirs", paired=True, min_d=0.2)
def test_dirs(model_name, evidence):
    r = rng("dirs", model_name)
    prompt = r.normal(0, 1, (24, 1))
    control = prompt + r.normal(0, 0.5, (1, 20)) + r.normal(0, 1, (24, 20))
    control[r.random((24, 20)) < 0.3] = np.nan
    evidence.record(treated=prompt[:, 0] + 1.5 + r.normal(0, 1, 24), control=control, metrics=where())

@claim("the subspace beats label-permuted ones on {model_name}", family="nulls", min_d=1.0)
def test_null(model_name, evidence):
    r = rng("null", model_name)
    evidence.record_null(observed=4.0, null=r.normal(0, 1, 199), metrics=where())
'''


def test_xdist_gives_identical_numbers(pytester, run):
    pytester.makepyfile(test_ecp_x=XDIST)
    pytester.makeini("[pytest]\naddopts = --dist loadgroup\n")  # must be harmless without -n
    frames = {}
    for label, extra in (("none", []), ("n1", ["-n", "1"]), ("n2", ["-n", "2"])):
        res_dir = pytester.path / f"results_{label}"
        args = ("--emocheck-results", str(res_dir), "--emocheck-models", "a,b", "--emocheck-ci-method", "bootstrap",
                "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *extra)
        # xdist needs a subprocess; the plain run also checks in-process use
        result = pytester.runpytest_subprocess(*args) if extra else pytester.runpytest(*args)
        assert result.ret in (0, 1), result.stdout.str()
        assert "emocheck: claims" in result.stdout.str()
        df = pd.read_csv(res_dir / "ci" / "statistics" / "effect_sizes.csv")
        assert len(df) == 14
        assert set(df.kind) == {"samples", "directions", "vs_null"}
        # workers write where the controller does (environment / workerinput)
        assert (df.metric_results_dir == str(res_dir.resolve())).all()
        if label == "n2":
            # loadgroup: all claims of one model ran on one worker
            assert df.groupby("model").metric_worker.nunique().eq(1).all()
            assert df.metric_worker.str.startswith("gw").all()
            # run-time breakdown: both workers' files and the controller's (one run id for the session)
            summ = json.loads((res_dir / "ci" / "statistics" / "session.json").read_text())["timing"]["phases"]
            assert summ["processes"] == 3 and set(summ["phases"]["ecp_x"]["models"]) == {"a", "b"}
            assert {"a", "b", ""} <= set(summ["phases"]["statistics"]["models"])
        frames[label] = df.drop(columns=["metric_results_dir", "metric_worker"])
    assert "@" not in "".join(frames["n2"].claim_id)
    pd.testing.assert_frame_equal(frames["none"], frames["n1"], check_exact=True)
    pd.testing.assert_frame_equal(frames["none"], frames["n2"], check_exact=True)
    # the bootstrap CIs are seeded per claim: different claims, different seeds
    assert frames["none"].seed.nunique() == 14


def test_family_counts_claims_in_classes_whatever_the_nodeid_selects(pytester, run):
    pytester.makepyfile(test_ecp_cls='''
import numpy as np
from emocheck.plugin.claims import claim

def data():
    return np.arange(10.0) + np.linspace(0, 1, 10) ** 2, np.arange(10.0)

class TestGroup:
    @claim("in class on {model_name}", family="k", paired=True)
    def test_in_class(self, model_name, evidence):
        evidence.record(*data())

@claim("free on {model_name}", family="k", paired=True)
def test_free(model_name, evidence):
    evidence.record(*data())
''')
    run("test_ecp_cls.py::test_free", "--emocheck-models", "a,b")
    eff = _effects(pytester)
    assert list(eff.index) == ["test_ecp_cls.py::test_free[a]", "test_ecp_cls.py::test_free[b]"]
    assert (eff.family_declared == 4).all() and (eff.family_run == 2).all()
    run("test_ecp_cls.py::TestGroup", "--emocheck-models", "a")
    eff = _effects(pytester)
    assert list(eff.index) == ["test_ecp_cls.py::TestGroup::test_in_class[a]"]
    assert eff.family_declared.iloc[0] == 2 and eff.short_id.iloc[0] == "test_ecp_cls::TestGroup::test_in_class[a]"


# ----------------------------------------------------------------------------------------------
# The two design-level evidence kinds: directions as a random effect, observed vs a null
# ----------------------------------------------------------------------------------------------

KINDS = '''
import numpy as np
from emocheck.plugin.claims import claim

def data(seed, effect):
    r = np.random.default_rng(seed)
    prompt = r.normal(0, 1, (30, 1))
    control = prompt + r.normal(0, 0.3, (1, 25)) + r.normal(0, 1, (30, 25))
    control[r.random((30, 25)) < 0.4] = np.nan          # a subset design
    return prompt[:, 0] + effect + r.normal(0, 1, 30), control

@claim("vector beats random directions", family="dirs", paired=True, min_d=0.2)
def test_dirs_big(evidence):
    t, c = data(1, 2.0)
    evidence.record(treated=t, control=c)

@claim("vector no better than random directions", family="dirs", paired=True, min_d=0.2)
def test_dirs_none(evidence):
    t, c = data(2, 0.0)
    evidence.record(treated=t, control=c)

@claim("subspace beats permuted ones", family="nulls", min_d=1.0)
def test_null_big(evidence):
    evidence.record_null(observed=5.0, null=np.random.default_rng(3).normal(0, 1, 199), metrics={"k": 3})

@claim("subspace like permuted ones", family="nulls", min_d=1.0)
def test_null_none(evidence):
    evidence.record_null(observed=0.5, null=np.random.default_rng(4).normal(0, 1, 199))

@claim("2-D control needs paired", family="bad")
def test_bad_unpaired(evidence):
    evidence.record(treated=[1, 2, 3], control=[[1, 2], [3, 4], [5, 6]])

@claim("too few null draws", family="bad")
def test_bad_null(evidence):
    evidence.record_null(observed=1.0, null=[0.5])

@claim("record then record_null", family="bad")
def test_bad_twice(evidence):
    evidence.record_null(observed=1.0, null=[0.5, 0.2, 0.1])
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])
'''


def test_directions_and_null_kinds_end_to_end(pytester, run):
    pytester.makepyfile(test_ecp_kinds=KINDS)
    result = run()
    result.assert_outcomes(passed=2, errors=3)
    assert result.parseoutcomes()["inconclusive"] == 2
    result.stdout.fnmatch_lines_random([
        "E * a 2-D control ?n_prompts, n_directions? (control directions*needs a paired claim*",
        "E * null has 1 draw(s); at least 2 are needed*",
        "E * evidence was recorded twice*",
    ])
    df = _effects(pytester)
    mod = "test_ecp_kinds.py::"
    big, none = df.loc[mod + "test_dirs_big"], df.loc[mod + "test_dirs_none"]
    assert big.kind == "directions" and big.verdict == "supported" and none.verdict == "inconclusive"
    assert big.n_treated == 30 and big.n_control == 25
    # the row carries exactly what compare_directions computes, rank and permutation p as metrics
    exec_ns: dict = {}
    exec(compile(KINDS, "kinds", "exec"), exec_ns)
    t, c = exec_ns["data"](1, 2.0)
    ref = stats.compare_directions(t, c, min_d=0.2)
    assert big.d == pytest.approx(ref.d, rel=1e-9) and big.p_value == pytest.approx(ref.p_value, rel=1e-9)
    assert big.metric_direction_rank == 1 and big.metric_direction_perm_p == pytest.approx(1 / 26)
    assert big.metric_n_directions == 25
    nb, nn = df.loc[mod + "test_null_big"], df.loc[mod + "test_null_none"]
    assert nb.kind == "vs_null" and nb.verdict == "supported" and nn.verdict == "inconclusive"
    assert nb.p_value == pytest.approx(1 / 200) and nb.metric_k == 3 and nb.metric_null_rank == 1
    # samples files: one row per prompt with one column per direction (NaN = not run); observed + draws
    sd = _stats_dir(pytester)
    dirs = pd.read_csv(sd / big.samples_file)
    assert list(dirs.columns[:3]) == ["sample_id", "treated", "control_0"] and dirs.shape == (30, 27)
    assert np.array_equal(np.isnan(dirs.filter(like="control_").to_numpy()), np.isnan(c))
    nulls = pd.read_csv(sd / nb.samples_file)
    assert nulls.shape[0] == 200 and nulls.role.iloc[0] == "observed" and nulls.value.iloc[0] == 5.0


def test_claim_level_alpha_inside_a_family_is_a_usage_error(pytester, run):
    pytester.makepyfile(test_ecp_alpha='''
import numpy as np
from emocheck.plugin.claims import claim

@claim("strict member", family="fam", alpha=0.01)
def test_strict(model_name, evidence):
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])

@claim("own family may set alpha", family="alone", alpha=0.01)
def test_alone(evidence):
    evidence.record(treated=[1, 2, 3], control=[0, 1, 2])
''')
    result = run("--emocheck-models", "a,b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*claim-level alpha= inside a correction family is incoherent*",
        "*test_ecp_alpha.py::test_strict[[]a[]]: alpha=0.01 in family 'fam' (2 claims)*",
    ])
    assert "test_alone" not in result.stderr.str()


def test_two_sided_sign_and_not_supported_reason_in_the_table(pytester, run):
    pytester.makepyfile(test_ecp_sign='''
import numpy as np
from emocheck.plugin.claims import claim

@claim("lowers or raises", family="two", paired=True, alternative="two-sided", min_d=0.2)
def test_down(evidence):
    r = np.random.default_rng(0)
    evidence.record(treated=r.normal(-1.0, 1, 40), control=np.zeros(40))

@claim("clears raw, not corrected", family="many", paired=True, min_d=0.2)
def test_weak(evidence):
    e = np.random.default_rng(5).normal(size=40)
    evidence.record(treated=0.5 + (e - e.mean()) / e.std(ddof=1), control=np.zeros(40))  # d_z = 0.5

@claim("filler", family="many", paired=True, min_d=0.2)
def test_filler(evidence):
    evidence.record(treated=[0.0, 0.1, -0.1, 0.2], control=[0.0, 0.0, 0.0, 0.0])
''')
    run("--emocheck-correction", "bonferroni")
    df = _effects(pytester)
    down = df.loc["test_ecp_sign.py::test_down"]
    assert down.verdict == "supported" and down.sign == "-" and down.d_bound_adjusted < -0.2
    weak = df.loc["test_ecp_sign.py::test_weak"]
    assert weak.d_ci_low > 0.2 and weak.verdict == "inconclusive" and weak.d_bound_adjusted < 0.2
    assert weak.reason.startswith("raw interval clears min_d = 0.2, but after bonferroni over 2 declared claims")
    md = (_stats_dir(pytester) / "report.md").read_text()
    assert "supported (treated < control)" in md and "but after bonferroni over 2 declared claims" in md


DEGENERATE = '''
import numpy as np
from emocheck.plugin.claims import claim

@claim("a patch that changed nothing", family="toy_same", paired=True, min_d=0.2)
def test_same(evidence):
    x = np.linspace(0, 1, 20)
    evidence.record(treated=x, control=x.copy())

@claim("every prompt moved by exactly one", family="toy_shift", paired=True, min_d=0.2)
def test_shift(evidence):
    x = np.linspace(0, 1, 20)
    evidence.record(treated=x + 1.0, control=x)
'''


def test_identical_outcomes_are_a_verdict_not_an_error(pytester, run):
    """Identical paired outcomes (as a label-shuffled run produced for one specificity claim) are
    judged: no difference -> d 0, p 1, inconclusive (no scale to measure d in); one identical non-zero
    difference on every prompt -> the exact sign test (p = 0.5^20), supported; files and report are written."""
    pytester.makepyfile(test_ecp_same=DEGENERATE)
    result = run("--emocheck-models", "a")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 passed*1 inconclusive*"])
    eff = _effects(pytester)
    same, shift = eff.loc["test_ecp_same.py::test_same"], eff.loc["test_ecp_same.py::test_shift"]
    assert same["status"] == "ok" and same["verdict"] == "inconclusive"
    assert same["d"] == 0 and same["p_value"] == 1
    assert shift["status"] == "ok" and shift["verdict"] == "supported"
    assert shift["d"] == np.inf and shift["p_value"] == pytest.approx(0.5 ** 20)


FLOOR = '''
import numpy as np
import pytest
from emocheck.plugin.claims import claim

K = 39

@claim("beats a small null on {model_name} ({i})", family="toy_floor", null_draws=K)
@pytest.mark.parametrize("i", [0, 1, 2])
def test_floor(model_name, i, evidence):
    evidence.record_null(observed=10.0, null=np.linspace(0, 1, K))

@claim("undeclared small null on {model_name} ({i})", family="toy_floor_undeclared")
@pytest.mark.parametrize("i", [0, 1, 2])
def test_floor_undeclared(model_name, i, evidence):
    evidence.record_null(observed=10.0, null=np.linspace(0, 1, 39))
'''


def test_null_draws_are_validated_at_decoration():
    assert claim("s", family="f", null_draws=119).mark.kwargs["null_draws"] == 119
    assert claim("s", family="f", null_draws="pkg.mod:fn").mark.kwargs["null_draws"] == "pkg.mod:fn"
    for bad in (0, True, 2.5, "nocolon", "a:b:c"):
        with pytest.raises(ConfigError, match="null_draws"):
            claim("s", family="f", null_draws=bad)


def test_a_family_that_can_never_be_supported_is_a_usage_error(pytester, run):
    """3 claims against 39 null draws: 3 / 40 = 0.075 >= alpha, said at collection with the K needed;
    undeclared, the same floor errors each claim at judgement instead of reading 'not supported'."""
    pytester.makepyfile(test_ecp_floor=FLOOR)
    result = run("--emocheck-models", "a", "-k", "test_floor")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*family 'toy_floor'*3 claim(s) judged against 39 null draws*0.075 >= alpha 0.05*"
                                 "at least 119 null draws*"])
    pytester.makepyfile(test_ecp_floor=FLOOR.replace("K = 39", "K = 119"))
    result = run("--emocheck-models", "a")
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*toy_floor_undeclared' can never be supported*"])
