"""pytest's --lf / --sw through `emocheck claims`, and why preregister / status refuse them.

`emocheck claims` keeps pytest's cache plugin, so `emocheck claims -- --lf` reruns only the claims
that failed; the correction families are still counted in full (the other members enter as p = 1).
`preregister` and `status` must see every claim: with --lf pytest skips, at collection, each file
without a recorded failure, so a lock written then would silently leave those claims out.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emocheck.plugin.options import alias_xdist_lastfailed

ROOT = Path(__file__).resolve().parents[1]

FAMILY = '''
import numpy as np
import pytest
from emocheck import claim


@claim("F {k}", family="fam", min_d=0.0)
@pytest.mark.parametrize("k", [1.5, 0.0, 2.0, 0.25])
def test_f(model_name, k, evidence):
    r = np.random.default_rng(int(k * 10))
    evidence.record(treated=r.normal(k, 1, 30), control=r.normal(0, 1, 30))
'''

OTHER = '''
import numpy as np
from emocheck import claim


@claim("G", family="gam", min_d=0.0)
def test_g(model_name, evidence):
    r = np.random.default_rng(1)
    evidence.record(treated=r.normal(2, 1, 30), control=r.normal(0, 1, 30))
'''

FAILING = ["test_fam.py::test_f[m1-0.0]", "test_fam.py::test_f[m1-0.25]"]


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOCHECK_") and k != "GITHUB_STEP_SUMMARY"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env


def _runner(folder: Path):
    def run(*args):
        cmd = [sys.executable, "-m", "emocheck.cli", *args]
        if "--" not in args:
            cmd.append("--")
        # fail on inconclusive too: the two small-effect claims then fail, whichever of refuted or
        # inconclusive their data give, and --lf / --sw have failures to work with
        cmd += ["--emocheck-results", "results", "--emocheck-models", "m1", "--emocheck-fail-on", "inconclusive",
                "-p", "no:hypothesispytest", "-rA"]
        return subprocess.run(cmd, cwd=folder, env=_env(), capture_output=True, text=True, timeout=300)
    return run


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The study after one full `emocheck claims` run (two claims failed and were recorded)."""
    folder = tmp_path_factory.mktemp("study")
    (folder / "test_fam.py").write_text(FAMILY)
    (folder / "test_other.py").write_text(OTHER)
    result = _runner(folder)("claims", "test_fam.py", "test_other.py")
    return folder, result


@pytest.fixture
def study(tmp_path):
    """A fresh copy of the study with no run yet; returns run(*args)."""
    (tmp_path / "test_fam.py").write_text(FAMILY)
    (tmp_path / "test_other.py").write_text(OTHER)
    return _runner(tmp_path)


@pytest.fixture
def after_first_run(first_run, tmp_path):
    """A copy of the study as the first run left it (results and .pytest_cache); returns run(*args)."""
    import shutil

    folder, _ = first_run
    shutil.copytree(folder, tmp_path / "study")
    return tmp_path / "study", _runner(tmp_path / "study")


def _effects(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "results" / "ci" / "statistics" / "effect_sizes.csv").set_index("claim_id")


def _ran(result) -> set[str]:
    words = ("PASSED ", "FAILED ", "REFUTED ", "INCONCLUSIVE ")
    return {ln.split()[1] for ln in result.stdout.splitlines() if ln.startswith(words) and "::" in ln.split()[1]}


def test_lf_reruns_only_the_failed_claims_and_keeps_the_family_size(first_run, after_first_run):
    _, first = first_run
    assert first.returncode == 1, first.stdout + first.stderr
    assert len(_ran(first)) == 5
    folder, run = after_first_run
    recorded = json.loads((folder / ".pytest_cache" / "v" / "cache" / "lastfailed").read_text())
    assert sorted(recorded) == FAILING
    again = run("claims", "test_fam.py", "test_other.py", "--", "--lf")
    assert again.returncode == 1, again.stdout + again.stderr
    assert _ran(again) == set(FAILING)
    eff = _effects(folder)
    assert sorted(eff.index) == FAILING
    # the family is still the four declared claims: the two not rerun enter the correction as p = 1
    assert set(eff["family_declared"]) == {4} and set(eff["family_run"]) == {2}


def test_sw_stops_at_the_first_failure_and_resumes_there(study, tmp_path):
    first = study("claims", "test_fam.py", "test_other.py", "--", "--sw")
    assert first.returncode == 2, first.stdout + first.stderr   # pytest: interrupted by --sw
    assert _ran(first) == {"test_fam.py::test_f[m1-1.5]", FAILING[0]}
    second = study("claims", "test_fam.py", "test_other.py", "--", "--sw")
    assert "skipping 1 already passed items" in second.stdout, second.stdout
    assert _ran(second) == {FAILING[0]}            # resumes at the claim that failed, not from the top


@pytest.mark.parametrize("command", ["preregister", "status"])
def test_preregister_and_status_refuse_the_cache_flags(study, tmp_path, command):
    r = study(command, "test_fam.py", "test_other.py", "--", "--lf")
    assert r.returncode == 2
    assert f"emocheck {command} must see every claim" in r.stderr and "--lf" in r.stderr
    assert not (tmp_path / ".pytest_cache").exists() and not (tmp_path / "preregistration.json").exists()


def test_the_plugin_refuses_a_lock_written_under_lf(after_first_run):
    """Through pytest itself: --lf would skip test_other.py at collection and drop its claim from the lock."""
    folder, run = after_first_run
    r = subprocess.run([sys.executable, "-m", "pytest", "test_fam.py", "test_other.py", "--lf", "--emocheck-preregister",
                        "--emocheck-results", "results", "--emocheck-models", "m1", "-p", "no:hypothesispytest"],
                       cwd=folder, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 4, r.stdout + r.stderr   # usage error
    assert "--emocheck-preregister must see every claim; drop --lf" in r.stderr
    assert not (folder / "preregistration.json").exists()
    ok = run("preregister", "test_fam.py", "test_other.py", "--force")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lock = json.loads((folder / "preregistration.json").read_text())
    assert len(lock["profiles"]["ci"]["claims"]) == 5


def test_failures_recorded_under_xdist_are_found_by_a_run_without_workers():
    class LF:
        lastfailed = {"t.py::test_f[m1-0.0]@m1": True, "t.py::test_g[a@b]": True, "t.py::test_h": True}

    class PM:
        def get_plugin(self, name):
            return LF() if name == "lfplugin" else None

    class Config:
        pluginmanager = PM()

    lf = LF.lastfailed
    config = Config()
    config.pluginmanager.get_plugin = lambda name: type("P", (), {"lastfailed": lf})()
    alias_xdist_lastfailed(config)
    assert lf["t.py::test_f[m1-0.0]"] is True                  # the plain id beside the suffixed one
    assert set(lf) == {"t.py::test_f[m1-0.0]@m1", "t.py::test_f[m1-0.0]", "t.py::test_g[a@b]", "t.py::test_h"}
