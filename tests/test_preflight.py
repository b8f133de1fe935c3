"""Fail before work, not after (issue 15, findings 4 and 5): a claims session checks the results
folder, profile, models, dataset and layers before any test runs, and an EmocheckError raised in a
fixture is shown as its message, not as a traceback through the library."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from emocheck.errors import ConfigError, DatasetError, ModelUnavailableError
from emocheck.plugin.preflight import check_dataset, check_layers, check_models, check_results_writable, preflight
from emocheck.profiles import get_profile

pytest_plugins = ["pytester"]

CLAIM = '''
from pathlib import Path
import pytest
from emocheck import claim

@pytest.fixture
def representations(model_name):     # stands for fixtures/representations.py (loads a model, reads data)
    return model_name

@claim("a toy claim", family="toy_pre")
def test_toy(model_name, representations, evidence):
    Path("RAN").write_text("the claim ran")
    evidence.record(treated=[1.0, 2.0, 3.0, 4.0, 5.0], control=[0.0, 1.0, 0.5, 1.5, 0.2])
'''


@pytest.fixture
def run(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)

    def _run(results, *args):
        return pytester.runpytest("--emocheck-results", str(results), "-p", "no:cacheprovider", *args)

    return _run


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:           # root writes through modes: use a file system that refuses
        return Path("/sys/emocheck-results-preflight")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def test_results_path_that_is_a_file_stops_the_session_before_any_claim(pytester, run):
    pytester.makepyfile(test_pre=CLAIM)
    (pytester.path / "results.txt").write_text("a file")
    result = run(pytester.path / "results.txt")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is not a folder" in out and "--emocheck-results" in out
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert not (pytester.path / "RAN").exists()


def test_unwritable_results_folder_stops_the_session_before_any_claim(pytester, run, tmp_path):
    pytester.makepyfile(test_pre=CLAIM)
    result = run(_unwritable(tmp_path))
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "not writable" in out or "cannot be created" in out
    assert "INTERNALERROR" not in out
    assert not (pytester.path / "RAN").exists()


def test_unknown_model_stops_the_session_before_any_claim(pytester, run):
    pytester.makepyfile(test_pre=CLAIM)
    result = run(pytester.path / "results", "--emocheck-models", "no-such-model")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "unknown model 'no-such-model'" in out
    assert not (pytester.path / "RAN").exists()


def test_bad_dataset_stops_the_session_before_any_claim(pytester, run, monkeypatch):
    pytester.makepyfile(test_pre=CLAIM)
    data = pytester.path / "data"
    data.mkdir()
    (data / "emotion_prompts.csv").write_text("id,emotion,sentence\n1,neutral,hello\n")
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(data))
    result = run(pytester.path / "results")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "header lacks column(s) text" in out
    assert not (pytester.path / "RAN").exists()


def test_plain_tests_are_not_preflighted(pytester, run):
    pytester.makepyfile(test_plain="def test_x():\n    assert True\n")
    (pytester.path / "results.txt").write_text("a file")
    assert run(pytester.path / "results.txt").ret == pytest.ExitCode.OK


FIXTURE_ERROR = '''
import pytest
from emocheck.dataset import load_emotion_prompts

@pytest.fixture(scope="module")
def prompts():
    return load_emotion_prompts("bad.csv")      # raises DatasetError deep in the library

@pytest.mark.parametrize("i", range(10))
def test_uses(prompts, i):
    assert prompts is not None
'''


def test_emocheck_error_in_a_fixture_is_shown_as_its_message(pytester, run):
    pytester.makepyfile(test_fx=FIXTURE_ERROR)
    (pytester.path / "bad.csv").write_text("id,emotion,text,trigger,genre,formality,explicitness,topic\n"
                                           "1,neutral,\"unclosed\n")
    result = run(pytester.path / "results")
    out = result.stdout.str()
    result.assert_outcomes(errors=10)
    assert out.count("DatasetError: ") >= 10 and "malformed CSV" in out
    assert "dataset.py:" not in out and "raise DatasetError" not in out     # no library frames
    assert "(raised from " in out and "test_fx.py:6)" in out                                             # but where it was called
    assert len(out.splitlines()) < 80, out                                   # was ~50 lines per test


def test_preflight_functions_raise_one_clear_error_each(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_results_writable(tmp_path / "f" / "sub", "ci")
    assert check_results_writable(tmp_path / "ok", "ci").is_dir()
    with pytest.raises(ModelUnavailableError, match="unknown model"):
        check_models(["no-such-model"])
    from dataclasses import replace

    with pytest.raises(ConfigError, match="layers must be integers"):
        check_layers(replace(get_profile("smoke"), extra={"layers": ["x"]}), [])
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(tmp_path / "nodata"))
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset()
    monkeypatch.delenv("EMOCHECK_DATA_DIR")
    assert preflight(get_profile("smoke"), tmp_path / "results") == [
        "environment", "results folder writable", "profile", "models", "layers", "dataset"]
    assert preflight(get_profile("smoke"), tmp_path / "results", models=[], dataset=False) == [
        "environment", "results folder writable", "profile"]


def test_under_xdist_the_preflight_error_is_each_claims_message_not_an_internal_error(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    import emocheck

    # the subprocess must import this checkout's emocheck, not whichever one is installed
    monkeypatch.setenv("PYTHONPATH", str(Path(emocheck.__file__).resolve().parent.parent))
    pytester.makepyfile(test_pre=CLAIM)
    (pytester.path / "results.txt").write_text("a file")
    result = pytester.runpytest_subprocess("--emocheck-results", str(pytester.path / "results.txt"),
                                           "-p", "no:cacheprovider", "-n", "2")
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "is not a folder" in out
    result.assert_outcomes(errors=2)
    assert not (pytester.path / "RAN").exists()
