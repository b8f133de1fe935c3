"""--emocheck-dataset end to end: the Q1 hypotheses (write-in, lexical, transfer) on a tiny random model
saved as a local folder, driven by tests/data/other.jsonl; a bad file is one clear usage error that
touches no cache; user profiles from the ini key and from pyproject.toml reach the session."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parent.parent
OTHER = REPO / "tests" / "data" / "other.jsonl"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from emocheck.testing import tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    tiny = tiny_model("llama", n_layers=2)
    tiny.model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


def _pytest(args, results):
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET", "PYTEST_ADDOPTS")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "pytest", *args, "--emocheck-results", str(results), "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest", "-q", "-W", "ignore::DeprecationWarning"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".safetensors", ".json")
            and "statistics" not in p.parts}


def test_other_dataset_drives_the_q1_claims_end_to_end(tiny_dir, tmp_path):
    results = tmp_path / "results"
    args = ["hypotheses/test_q1_write_in.py", "hypotheses/test_q1_lexical.py", "hypotheses/test_q1_transfer.py",
            "-k", "anger and (last or write_in) and not beats_words_on", "--emocheck-dataset", str(OTHER), "--emocheck-models", str(tiny_dir),
            "--emocheck-profile", "mini", "-o", "emocheck_profiles=mini: base=smoke prompts_per_emotion=24"]
    done = _pytest(args, results)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]   # verdicts, not errors
    effects = pd.read_csv(results / "mini" / "statistics" / "effect_sizes.csv")
    # claims the file cannot support (implicit, masked, position strata) are not declared, so none skips
    assert (effects["status"] == "ok").all(), effects[["claim_id", "status", "error"]]
    assert not effects["family"].isin(["q1_implicit", "q1_masked", "q1_position"]).any()
    ran = effects[effects["status"] == "ok"]
    families = set(ran["family"])
    assert {"q1_vs_neutral", "q1_vs_other", "q1_write_in", "q1_transfer"} <= families, families
    # the dataset's own emotions, its held-out split (30% of 24 = 7 per emotion), no trigger_last claims
    assert set(ran["params"].map(lambda p: json.loads(p).get("emotion"))) == {"anger"}
    q1 = ran[ran["family"] == "q1_vs_neutral"]
    assert (q1["n_treated"] == 7).all() and (q1["n_control"] == 7).all()
    assert not effects["claim_id"].str.contains("trigger_last").any()
    assert q1["metric_lexical_auc"].between(0, 1).all()
    transfer = ran[ran["family"] == "q1_transfer"]
    assert set(transfer["metric_route"]) == {"A->B", "B->A"}
    # B judged whole (3 x 24 = 72 prompts), A judged whole at this profile (24 per emotion)
    assert set(transfer["n_treated"]) == {24}
    vectors = list((results / "mini" / "emotion_vectors").glob("tiny-llama_other-*_vectors_token_based.json"))
    assert len(vectors) == 1 and (results / "mini" / "emotion_vectors" / "tiny-llama_vectors_token_based.json").is_file()
    session = json.loads((results / "mini" / "statistics" / "session.json").read_text())
    assert str(OTHER) in json.dumps(session)

    # a bad dataset: one clear usage error naming file and line, and no cached file changes
    before = _digest(results / "mini")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Thanks.", "emotion": "gratitude"}\n{"text": "Hm", "emotion": \n')
    failed = _pytest([*args, "--emocheck-dataset", str(bad)], results)
    assert failed.returncode == 4, failed.stdout[-2000:] + failed.stderr[-2000:]
    assert f"{bad} line 2: not valid JSON" in failed.stderr + failed.stdout
    assert _digest(results / "mini") == before


def test_profiles_from_pyproject_reach_the_session(pytester, monkeypatch):
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET"):
        monkeypatch.delenv(var, raising=False)
    pytester.makefile(".toml", pyproject='''
[tool.emocheck.profiles.tiny]
base = "smoke"
models = ["m1", "m2"]
prompts_per_emotion = 5
dataset = "mine.jsonl"
''')
    pytester.makefile(".jsonl", mine='{"text": "Thanks.", "emotion": "gratitude"}\n{"text": "A box.", "emotion": "neutral"}\n')
    pytester.makepyfile(test_show='''
import os
def test_show(emocheck_profile):
    p = emocheck_profile
    assert p.name == "tiny" and p.models == ("m1", "m2") and p.prompts_per_emotion == 5
    assert p.dataset.endswith("mine.jsonl") and os.environ["EMOCHECK_DATASET"] == p.dataset
''')
    result = pytester.runpytest("--emocheck-profile", "tiny", "--emocheck-results", str(pytester.path / "r"),
                                "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1)
    pytester.makefile(".toml", pyproject="[tool.emocheck.profiles.tiny]\nmodel = 'x'\n")
    result = pytester.runpytest("--emocheck-profile", "tiny", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    assert result.ret == 4
    assert "profile 'tiny' has unknown key(s) 'model'" in "\n".join(result.errlines + result.outlines)
