"""The run-time breakdown of a claims session: one phase per claim test (named after its module),
library phases nested in it, statistics and figures, session.json and the end-of-session line."""
from __future__ import annotations

import json

import pytest

from emocheck import timing

pytest_plugins = ["pytester"]

TOY = '''
import time
import numpy as np
from emocheck import timing
from emocheck.plugin.claims import claim

@claim("an effect on {model_name}", family="toy_time", min_d=0.5)
def test_effect(model_name, evidence):
    with timing.phase("generation", model=model_name, tokens=7):
        time.sleep(0.06)
    time.sleep(0.03)                       # the module's own code
    r = np.random.default_rng(len(model_name))
    evidence.record(treated=r.normal(2.0, 1.0, 30), control=r.normal(0.0, 1.0, 30))

def test_not_a_claim():
    time.sleep(0.05)
'''


@pytest.fixture
def inner_session(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS", "EMOCHECK_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    saved = dict(timing._target)
    timing.configure(None, None)            # the inner session's results folder, as in a real run
    timing.reset()
    yield pytester
    timing.reset()
    timing._target.update(saved)


def test_session_json_and_terminal_carry_every_phase(inner_session):
    pytester = inner_session
    pytester.makepyfile(test_ecp_timed=TOY)
    result = pytester.runpytest("--emocheck-results", str(pytester.path / "results"), "--emocheck-models", "a,bb",
                                "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=3)
    session = json.loads((pytester.path / "results" / "ci" / "statistics" / "session.json").read_text())
    phases = session["timing"]["phases"]["phases"]
    mod = phases["ecp_timed"]                       # the claim tests' own code, per model
    assert set(mod["models"]) == {"a", "bb"} and mod["calls"] == 4      # setup + call per model
    for m in ("a", "bb"):
        assert 0.03 <= mod["models"][m]["seconds"] < mod["models"][m]["inclusive_seconds"]
        assert mod["models"][m]["inclusive_seconds"] >= 0.09
        assert phases["generation"]["models"][m]["seconds"] >= 0.06
    assert phases["generation"]["tokens"] == 14
    # judging on the worker (per model) and the correction + report files on the controller
    assert {"a", "bb", ""} <= set(phases["statistics"]["models"]) and phases["statistics"]["calls"] == 4
    assert phases["figures"]["calls"] >= 1          # the family forest plot
    assert "test_not_a_claim" not in json.dumps(phases)
    line = [x for x in result.stdout.lines if x.startswith("emocheck timing (")]
    assert len(line) == 1 and "ecp_timed" in line[0] and "generation" in line[0] and "session run" in line[0]



def test_each_session_prunes_older_runs_timing_files(inner_session, monkeypatch):
    """Three earlier runs' files in the results folder and KEEP_RUNS = 2: after a session the folder
    keeps this session's run and the newest earlier one, and the summary is this session's run."""
    import time

    pytester = inner_session
    pytester.makepyfile(test_ecp_timed=TOY)
    monkeypatch.setattr(timing.prune, "__defaults__", (2,))
    folder = pytester.path / "results" / "ci" / "timing"
    folder.mkdir(parents=True)
    for k in range(3):
        (folder / f"elsewhere-{k}.json").write_text(json.dumps(
            {"version": 2, "run": f"earlier-{k}", "updated": time.time() - 100 + k, "records": []}))
    monkeypatch.setenv("EMOCHECK_RUN_ID", "this-session")
    result = pytester.runpytest("--emocheck-results", str(pytester.path / "results"), "--emocheck-models", "a",
                                "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2)
    session = json.loads((pytester.path / "results" / "ci" / "statistics" / "session.json").read_text())
    assert session["timing"]["phases"]["run"] == "this-session"
    left = {json.loads(p.read_text())["run"] for p in folder.glob("*.json")}
    assert left == {"this-session", "earlier-2"}
