"""End to end: pre-register a toy study, edit it in each way a forking path takes, check every status.

Each test writes a hypotheses module and a data folder into a pytester directory, runs
``--emocheck-preregister`` (which must run no claim), edits one thing, runs the claims and reads the
statuses back from effect_sizes.csv, the JUnit XML, report.md and the terminal.
"""
from __future__ import annotations

import json
import linecache
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

import emocheck.dataset  # noqa: F401 - imported before pytester's in-process runs snapshot sys.modules
import emocheck.stats.core  # noqa: F401 - (numpy's C extensions cannot be imported twice in a process)
from emocheck.plugin import preregistration as prereg

pytest_plugins = ["pytester"]

STUDY = '''
import numpy as np
import pytest
from pathlib import Path
from emocheck import claim
from emocheck.dataset import data_dir
from emocheck.plugin.spec_hash import design

OFFSET = 0.0


def _read_a():
    return float(Path(data_dir(), "a.csv").read_text().split()[0])


def _read_b():
    return float(Path(data_dir(), "b.csv").read_text().split()[0])


def _score(shift, seed):
    r = np.random.default_rng(seed)
    return r.normal(shift + OFFSET, 1, 40), r.normal(0, 1, 40)


@design(controls={"random_directions": N_CONTROLS}, layer_rule="max train d")
@claim("A: {k} separates", family="fam_a", min_d=MIN_D_A)
@pytest.mark.parametrize("k", ["x", "y"])
def test_a(model_name, k, evidence):
    Path("ran_a").write_text("claim code ran")
    t, c = _score(_read_a(), len(k))
    evidence.record(treated=t, control=c)


@claim("B separates", family="fam_b", min_d=0.2)
def test_b(model_name, evidence):
    Path("ran_b").write_text("claim code ran")
    r = np.random.default_rng(7)
    evidence.record(treated=r.normal(_read_b(), 1, 40), control=r.normal(0, 1, 40))
'''

NEW_CLAIM = '''

@claim("A2: a later idea", family="fam_a", min_d=0.2)
def test_a_new(model_name, evidence):
    t, c = _score(_read_a(), 5)
    evidence.record(treated=t, control=c)
'''


def write_study(pytester, *, min_d_a=0.2, n_controls=3, extra=""):
    src = STUDY.replace("MIN_D_A", repr(min_d_a)).replace("N_CONTROLS", repr(n_controls)) + extra
    pytester.makepyfile(test_study=src)


@pytest.fixture
def study(pytester, monkeypatch):
    """A pytester dir with a data folder; returns run(*args) -> RunResult (in process)."""
    data = pytester.path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1.5\n")
    (data / "b.csv").write_text("1.2\n")
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(data))
    for key in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(key, raising=False)
    write_study(pytester)

    def run(*args):
        linecache.clearcache()  # the module is edited between runs of one process
        return pytester.runpytest("--emocheck-results", str(pytester.path / "results"), "--emocheck-models", "m1",
                                  "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)
    return run


def _effects(pytester) -> pd.DataFrame:
    return pd.read_csv(pytester.path / "results" / "ci" / "statistics" / "effect_sizes.csv").set_index("claim_id")


A_X, A_Y, B = "test_study.py::test_a[m1-x]", "test_study.py::test_a[m1-y]", "test_study.py::test_b[m1]"


def _statuses(pytester) -> dict[str, str]:
    return _effects(pytester).registration.to_dict()


def _changes(pytester, claim_id) -> list[dict]:
    session = json.loads((pytester.path / "results" / "ci" / "statistics" / "session.json").read_text())
    return session["registration"]["claims"][claim_id]["changes"]


def _preregister(pytester, run, *extra):
    res = run("--emocheck-preregister", *extra)
    assert res.ret == 0, res.stdout.str()
    assert not (pytester.path / "ran_a").exists() and not (pytester.path / "ran_b").exists()  # no claim ran
    return json.loads((pytester.path / "preregistration.json").read_text())


def test_preregistered_run_reports_pre_registered_everywhere(pytester, study):
    lock = _preregister(pytester, study)
    entry = lock["profiles"]["ci"]
    assert set(entry["claims"]) == {A_X, A_Y, B} and entry["forced"] is False
    assert entry["families"]["fam_a"]["members"] == [A_X, A_Y]
    spec = entry["claims"][A_X]["spec"]
    assert spec["claim"]["min_d"] == 0.2 and spec["design"]["controls"] == {"random_directions": 3}
    assert set(spec["data"]) == {"a.csv"} and set(entry["claims"][B]["spec"]["data"]) == {"b.csv"}
    assert "test_study:_score" in spec["code"] and "test_study:OFFSET" in spec["code"]

    res = study("--junitxml", str(pytester.path / "junit.xml"))
    assert res.ret == 0, res.stdout.str()
    assert _statuses(pytester) == {A_X: "pre-registered", A_Y: "pre-registered", B: "pre-registered"}
    out = res.stdout.str()
    assert "registration" in out and "3 pre-registered" in out
    root = ET.parse(pytester.path / "junit.xml").getroot()
    props = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")} for tc in root.iter("testcase")}
    assert {p["emocheck_registration"] for p in props.values()} == {"pre-registered"}
    md = (pytester.path / "results" / "ci" / "statistics" / "report.md").read_text()
    assert "## Pre-registration" in md and "pre-registered" in md


def test_registration_status_carries_the_verdicts(pytester, study):
    """The run's registration line counts the verdicts per status; the dry status check shows the last run's."""
    _preregister(pytester, study)
    res = study()
    assert res.ret == 0, res.stdout.str()
    res.stdout.fnmatch_lines(["registration: lock *: 3 pre-registered (3 supported)"])
    res = study("--emocheck-registration-status")
    res.stdout.fnmatch_lines(["*verdicts of the last run (*session.json): 3 pre-registered (3 supported)"])
    write_study(pytester, min_d_a=0.3)
    res = study("--emocheck-registration-status")
    res.stdout.fnmatch_lines_random([
        f"{A_X}: changed after registration: claim.min_d 0.2 -> 0.3; last verdict: supported",
        "*verdicts of the last run (*): 2 changed after registration (2 supported), 1 pre-registered (1 supported)"])


def test_no_lock_means_exploratory(pytester, study):
    res = study()
    assert res.ret == 0
    assert set(_statuses(pytester).values()) == {"exploratory"}
    assert "no lock for profile ci" in res.stdout.str()


def test_edited_min_d_changes_exactly_that_claim(pytester, study):
    _preregister(pytester, study)
    write_study(pytester, min_d_a=0.3)
    study()
    st = _statuses(pytester)
    assert st == {A_X: prereg.CHANGED, A_Y: prereg.CHANGED, B: prereg.PRE_REGISTERED}
    assert _changes(pytester, A_X) == [{"field": "claim.min_d", "from": 0.2, "to": 0.3}]
    assert "claim.min_d 0.2 -> 0.3" in _effects(pytester).loc[A_X, "registration_changes"]


def test_edited_control_count_changes_exactly_the_claims_that_declare_it(pytester, study):
    _preregister(pytester, study)
    write_study(pytester, n_controls=20)
    res = study()
    assert _statuses(pytester) == {A_X: prereg.CHANGED, A_Y: prereg.CHANGED, B: prereg.PRE_REGISTERED}
    assert _changes(pytester, A_Y) == [{"field": "design.controls.random_directions", "from": 3, "to": 20}]
    assert "design.controls.random_directions 3 -> 20" in res.stdout.str()


def test_edited_data_file_changes_exactly_the_claims_that_read_it(pytester, study):
    _preregister(pytester, study)
    (pytester.path / "data" / "b.csv").write_text("1.3\n")
    study()
    assert _statuses(pytester) == {A_X: prereg.PRE_REGISTERED, A_Y: prereg.PRE_REGISTERED, B: prereg.CHANGED}
    (change,) = _changes(pytester, B)
    assert change["field"] == "data.b.csv" and change["from"] != change["to"]


def test_edited_analysis_code_changes_exactly_the_claims_that_call_it(pytester, study):
    _preregister(pytester, study)
    src = (pytester.path / "test_study.py").read_text()
    # the analysis helper of the A claims: a different noise model
    (pytester.path / "test_study.py").write_text(src.replace("r.normal(0, 1, 40)\n\n\n@design", "r.normal(0, 1.1, 40)\n\n\n@design"))
    study()
    assert _statuses(pytester) == {A_X: prereg.CHANGED, A_Y: prereg.CHANGED, B: prereg.PRE_REGISTERED}
    assert [c["field"] for c in _changes(pytester, A_X)] == ["code.test_study:_score"]
    # a module constant the helper reads is recorded by value
    (pytester.path / "test_study.py").write_text(src.replace("OFFSET = 0.0", "OFFSET = 0.1"))
    study()
    assert _changes(pytester, A_X) == [{"field": "code.test_study:OFFSET", "from": 0.0, "to": 0.1}]
    assert _statuses(pytester)[B] == prereg.PRE_REGISTERED
    # reformatting and comments are no change
    (pytester.path / "test_study.py").write_text(src.replace("def _score(shift, seed):", "def _score(shift,   seed):  # noise"))
    study()
    assert set(_statuses(pytester).values()) == {prereg.PRE_REGISTERED}


def test_new_claim_is_exploratory_and_its_family_is_flagged(pytester, study):
    _preregister(pytester, study)
    write_study(pytester, extra=NEW_CLAIM)
    res = study()
    st = _statuses(pytester)
    new = "test_study.py::test_a_new[m1]"
    assert st == {A_X: prereg.PRE_REGISTERED, A_Y: prereg.PRE_REGISTERED, B: prereg.PRE_REGISTERED,
                  new: prereg.EXPLORATORY}
    eff = _effects(pytester)
    assert eff.family_membership_changed.to_dict() == {A_X: True, A_Y: True, B: False, new: True}
    assert "family fam_a: membership changed since the lock" in res.stdout.str()
    session = json.loads((pytester.path / "results" / "ci" / "statistics" / "session.json").read_text())
    assert session["families"]["fam_a"]["added"] == [new] and session["families"]["fam_b"]["membership_changed"] is False
    # a claim removed from a family flags it too
    write_study(pytester)
    (pytester.path / "test_study.py").write_text(
        (pytester.path / "test_study.py").read_text().replace('["x", "y"]', '["x"]'))
    study()
    eff = _effects(pytester)
    assert bool(eff.loc[A_X, "family_membership_changed"]) is True and eff.loc[A_X, "registration"] == prereg.PRE_REGISTERED


def test_lock_refused_after_results_unless_forced_and_force_is_recorded(pytester, study):
    study()  # results now exist for profile ci
    res = study("--emocheck-preregister")
    assert res.ret != 0
    assert "results already exist for profile 'ci'" in res.stdout.str() + res.stderr.str()
    assert not (pytester.path / "preregistration.json").exists()
    (pytester.path / "ran_a").unlink()
    (pytester.path / "ran_b").unlink()
    lock = _preregister(pytester, study, "--emocheck-preregister-force")
    entry = lock["profiles"]["ci"]
    assert entry["forced"] is True and "statistics/effect_sizes.csv" in entry["results_seen"]
    assert "--emocheck-preregister-force" in entry["command"]
    res = study()
    assert "FORCED after" in res.stdout.str()
    session = json.loads((pytester.path / "results" / "ci" / "statistics" / "session.json").read_text())
    assert session["registration"]["lock"]["forced"] is True
    assert "forced" in (pytester.path / "results" / "ci" / "statistics" / "report.md").read_text()
    assert set(_statuses(pytester).values()) == {prereg.PRE_REGISTERED}


def test_force_without_preregister_and_preregister_with_xdist_are_usage_errors(pytester, study):
    res = study("--emocheck-preregister-force")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "only goes with --emocheck-preregister" in res.stderr.str()
    res = study("--emocheck-preregister", "-n", "2")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "collects in one process; drop -n" in res.stderr.str()
    assert not (pytester.path / "preregistration.json").exists()


def test_a_corrupt_lock_is_one_clear_error_at_report_time(pytester, study):
    (pytester.path / "preregistration.json").write_text("{not json")
    res = study()
    assert "is not a readable preregistration file" in res.stdout.str()
    assert set(_statuses(pytester).values()) == {prereg.EXPLORATORY}
    assert (pytester.path / "preregistration.json").read_text() == "{not json"  # never rewritten by a run


# --- the `emocheck` command (emocheck/cli.py): the same lock, and a status check that runs nothing ---

def _cli(pytester, *args):
    import sys

    return pytester.run(sys.executable, "-m", "emocheck.cli", *args, "--", "--emocheck-results",
                        str(pytester.path / "results"), "--emocheck-models", "m1", "-p", "no:hypothesispytest")


def test_cli_preregister_then_status_then_edit(pytester, study):
    res = _cli(pytester, "status", "test_study.py", "--strict")
    assert res.ret == 1 and "no lock for profile ci" in res.stdout.str()      # nothing registered yet
    res = _cli(pytester, "preregister", "test_study.py")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    lock = json.loads((pytester.path / "preregistration.json").read_text())
    assert set(lock["profiles"]["ci"]["claims"]) == {A_X, A_Y, B}
    res = _cli(pytester, "status", "test_study.py", "--strict")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    assert "3 pre-registered" in res.stdout.str()
    write_study(pytester, min_d_a=0.3, extra=NEW_CLAIM)
    res = _cli(pytester, "status", "test_study.py", "--strict")
    out = res.stdout.str()
    assert res.ret == 1
    assert f"{A_X}: changed after registration: claim.min_d 0.2 -> 0.3" in out
    assert "test_study.py::test_a_new[m1]: exploratory" in out and "family fam_a: membership changed" in out
    assert "1 exploratory" in out and "1 pre-registered" in out and "2 changed after registration" in out
    # no claim ran at any step and no result was written: the lock and the status only collect
    assert not (pytester.path / "ran_a").exists() and not (pytester.path / "ran_b").exists()
    assert not (pytester.path / "results" / "ci" / "statistics" / "effect_sizes.csv").exists()


def test_cli_arguments_map_to_the_plugin_flags():
    from emocheck import cli

    ns = cli._parser().parse_args(["preregister", "hyp/", "--profile", "full", "--force"])
    assert cli.pytest_args(ns, ["-k", "gemma"]) == ["hyp/", "-p", "no:cacheprovider", "--emocheck-profile", "full",
                                                    "--emocheck-preregister", "--emocheck-preregister-force",
                                                    "-k", "gemma"]
    ns = cli._parser().parse_args(["status"])
    assert cli.pytest_args(ns, []) == ["hypotheses", "-p", "no:cacheprovider", "--emocheck-registration-status"]
    assert cli.strict_failures(None) == ["the status check did not run"]
    ok = {"statuses": {"a": {"status": "pre-registered"}}, "families": {"f": {"membership_changed": False}},
          "lock_found": True, "error": None}
    assert cli.strict_failures(ok) == []
    bad = dict(ok, families={"f": {"membership_changed": True}})
    assert cli.strict_failures(bad) == ["family f: membership changed"]


def test_status_and_preregister_exclude_each_other(pytester, study):
    res = study("--emocheck-preregister", "--emocheck-registration-status")
    assert res.ret != 0 and "only reads the lock" in res.stderr.str()
