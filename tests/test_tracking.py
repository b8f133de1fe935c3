"""MLflow logging of a session (real local file store, no mocks) and the error without mlflow."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from emocheck.errors import ConfigError
from emocheck.plugin.tracking import claim_key, require_mlflow, sanitize_key

pytest_plugins = ["pytester"]

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None

CLAIMS = '''
import numpy as np
from emocheck.plugin.claims import claim

@claim("big effect on {model_name}", family="t", min_d=0.3)
def test_big(model_name, evidence):
    r = np.random.default_rng(len(model_name))
    evidence.record(treated=r.normal(1.5, 1, 30), control=r.normal(0, 1, 30), metrics={"auc": 0.93, "layer": "9"})
'''


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)


def test_missing_mlflow_is_a_clear_error(monkeypatch, pytester, clean_env):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'emocheck\[mlflow\]'"):
        require_mlflow()
    pytester.makepyfile(test_ecp_c=CLAIMS)
    result = pytester.runpytest("--emocheck-mlflow", "--emocheck-results", "results", "-p", "no:hypothesispytest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--emocheck-mlflow needs mlflow*pip install 'emocheck[[]mlflow[]]'*"])


def test_metric_keys_are_sanitised():
    assert sanitize_key("test_q1::test_sep[gemma3-270m-anger]/d") == "test_q1_test_sep_gemma3-270m-anger_/d"
    long = sanitize_key("x" * 400)
    assert len(long) <= 200
    key = claim_key("hypotheses/test_q1.py::test_sep[gemma3-270m-anger]")
    assert key.startswith("test_q1.test_sep_gemma3-270m-anger_-") and set(key) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./ ")
    assert claim_key("a/test_x.py::t[1]") != claim_key("b/test_x.py::t[1]")


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (optional extra: pip install 'emocheck[mlflow]')")
def test_session_is_logged_to_a_local_mlflow_store(pytester, tmp_path, clean_env):
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    uri = store.as_uri()
    pytester.makepyfile(test_ecp_c=CLAIMS)
    result = pytester.runpytest(
        "--emocheck-mlflow", "--emocheck-mlflow-uri", uri, "--emocheck-models", "a,bb",
        "--emocheck-results", "results", "--emocheck-correction", "bonferroni", "-p", "no:hypothesispytest",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*MLflow run * at file:*"])

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("emocheck")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["profile"] == "ci"
    assert run.data.params["models"] == "a,bb"
    assert run.data.params["correction"] == "bonferroni"
    assert float(run.data.params["alpha"]) == 0.05
    metrics = run.data.metrics
    key = claim_key("test_ecp_c.py::test_big[a]")
    assert metrics[f"{key}/d"] > 1.0
    assert 0 <= metrics[f"{key}/p_adjusted"] <= 1 and metrics[f"{key}/supported"] == 1.0
    assert metrics[f"{key}/metric_auc"] == pytest.approx(0.93)
    assert f"{key}/metric_layer" not in metrics  # strings are not metrics
    assert metrics["claims_supported"] == 2.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"effect_sizes.csv", "power_analysis.csv", "power_analysis.json", "report.md", "report.html",
            "session.json", "samples"} <= artifacts
    assert any(a.startswith("forest_") and a.endswith(".png") for a in artifacts)
    import pandas as pd

    local = client.download_artifacts(run.info.run_id, "effect_sizes.csv", str(tmp_path))
    assert len(pd.read_csv(local)) == 2
