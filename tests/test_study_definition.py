"""The study definition (emocheck.study): the embedded study is exactly what the phases used before it
existed, a dataset's emotions define the study, the configuration gives instruments, words and
prefixes to emotions the embedded study does not know, bad configuration is one clear error, and a
four-emotion dataset that is not the embedded one runs every phase's claims on tiny random models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emocheck import study as st
from emocheck.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
FOUR = ("joy", "fear", "anger", "gratitude")


def test_embedded_study_is_the_one_the_phases_used():
    s = st.study_for()                                    # the project's data/emotion_prompts.csv
    assert s.emotions == ("gratitude", "anger", "apology") and s.neutral == "neutral"
    assert s.targets() == {"gratitude": ("politeness", 1), "anger": ("sentiment", -1), "apology": ("emo_remorse", 1)}
    assert s.labels() == {"gratitude": "emo_gratitude", "anger": "emo_anger", "apology": "emo_remorse"}
    assert s.score_columns() == ("sentiment", "politeness", "emo_gratitude", "emo_anger", "emo_remorse")
    # the Q3 claims' parameters, as they were written out by hand
    assert sorted(s.instrument_claims(+1)) == sorted([("gratitude", "politeness"), ("gratitude", "gratitude"),
                                                      ("apology", "remorse"), ("anger", "anger")])
    assert s.instrument_claims(-1) == [("anger", "sentiment")]
    assert sorted(s.contrast_claims(+1)) == sorted([("gratitude", "anger", "politeness"), ("gratitude", "anger", "gratitude"),
                                                    ("apology", "gratitude", "remorse"), ("anger", "gratitude", "anger")])
    assert s.contrast_claims(-1) == [("anger", "gratitude", "sentiment")]
    assert s.target_claims(+1) == [("gratitude", "politeness"), ("apology", "remorse")]
    assert s.target_claims(-1) == [("anger", "sentiment")]
    assert s.design("apology").prompt_prefix == "I am so sorry, I sincerely apologise for my mistake. "
    assert s.design("gratitude").readout_words[-1] == "gratitude" and "appreciated" not in s.design("gratitude").target_words
    assert s.nll_margin == pytest.approx(0.4054651081081644) and s.rep3_margin == 0.10


def test_unknown_emotions_follow_the_stated_rule():
    s = st.make_study(["neutral", "joy", "anger", "zest", "gratitude"])
    assert s.emotions == ("gratitude", "anger", "joy", "zest")            # embedded order, then alphabetical
    joy, zest = s.design("joy"), s.design("zest")
    assert joy.instruments == (("joy", 1),) and joy.label == "joy" and joy.prompt_prefix is None
    assert joy.readout_words == ("joy",) and joy.target_words == ("joy",) and joy.contrast == "gratitude"
    assert zest.instruments == () and zest.label is None and zest.target is None     # not an evaluator label
    assert "zest" not in s.targets() and "zest" not in s.labels() and "zest" not in [e for e, _ in s.instrument_claims(1)]
    assert s.prompted() == ("gratitude", "anger")
    assert s.score_columns() == ("sentiment", "politeness", "emo_gratitude", "emo_anger", "emo_joy")
    assert s.index("joy") == 2
    with pytest.raises(ConfigError, match="emotion 'apology' is not in the study"):
        s.design("apology")


def test_configuration_defines_other_emotions(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('''
[tool.emocheck.study.joy]
instruments = ["sentiment", "joy"]
readout_words = ["happy", "glad"]
prompt_prefix = "I am so happy today. "
contrast = "fear"
[tool.emocheck.study.fear]
instruments = ["-sentiment", "nervousness"]
[tool.emocheck.study.anger]
target_words = ["mad"]
''')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(st.ENV_STUDY, raising=False)
    tables, where = st.config_tables()
    s = st.make_study(["joy", "fear", "anger", "neutral"], tables, where)
    assert s.targets() == {"anger": ("sentiment", -1), "fear": ("sentiment", -1), "joy": ("sentiment", 1)}
    assert s.design("joy").readout_words == ("happy", "glad") and s.prompted() == ("anger", "joy")
    assert s.design("anger").target_words == ("mad",)                     # one key replaced, the rest embedded
    assert s.design("anger").readout_words == st.EMBEDDED["anger"].readout_words
    assert ("fear", "nervousness") in s.instrument_claims(+1) and ("joy", "fear", "sentiment") in s.contrast_claims(+1)
    assert "emo_nervousness" in s.score_columns()
    # the same tables from a study file named by $EMOCHECK_STUDY
    study_file = tmp_path / "study.toml"
    study_file.write_text('[joy]\ninstruments = ["-politeness"]\n')
    monkeypatch.setenv(st.ENV_STUDY, str(study_file))
    tables, where = st.config_tables()
    assert st.make_study(["joy", "neutral"], tables, where).targets() == {"joy": ("politeness", -1)}


@pytest.mark.parametrize("toml, message", [
    ('[joy]\ncolour = "red"\n', r"emotion 'joy' has unknown key\(s\) 'colour'; allowed: instruments"),
    ('[joy]\ninstruments = ["happiness"]\n', r"unknown instrument 'happiness'; one of sentiment, politeness"),
    ('[joy]\nlabel = "bliss"\n', r"label 'bliss' is not a label of the emotion evaluator"),
    ('[joy]\nreadout_words = "happy"\n', r"key 'readout_words' = 'happy': give a list of one or more words"),
    ('[joy]\ncontrast = "calm"\n', r"contrast 'calm', which is not an emotion of the dataset"),
    ('[joy\n', r"not valid TOML"),
])
def test_bad_study_configuration_is_one_clear_error(tmp_path, toml, message):
    path = tmp_path / "study.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        st.make_study(["joy", "anger"], *st.config_tables(path))


def test_the_study_follows_the_active_dataset(tmp_path):
    path = tmp_path / "four.jsonl"
    write_four_emotions(path, per_emotion=4)
    from emocheck.profiles import get_profile
    from dataclasses import replace

    s = st.study_for(replace(get_profile("smoke"), dataset=str(path)))
    assert s.emotions == ("gratitude", "anger", "fear", "joy")
    write_four_emotions(path, per_emotion=4, emotions=("joy", "fear"))     # the file changed: read again
    assert st.study_for(replace(get_profile("smoke"), dataset=str(path))).emotions == ("fear", "joy")


# ---------------------------------------------------------------------------------- end to end

_OPENINGS = ("Today at the market", "After the long meeting", "On the way home", "During the school visit",
             "At the end of the trip", "Before the concert", "While fixing the bike", "Near the old bridge")
_FEELINGS = {"joy": "I felt so happy and delighted", "fear": "I was terrified and my hands shook",
             "anger": "I was furious and fed up", "gratitude": "I am so thankful to everyone",
             "neutral": "we checked the timetable and left"}


def write_four_emotions(path: Path, per_emotion: int = 24, emotions=FOUR) -> None:
    rows = []
    for e in (*emotions, "neutral"):
        for i in range(per_emotion):
            opening = _OPENINGS[i % len(_OPENINGS)]
            rows.append({"text": f"{opening}, {_FEELINGS[e]} (note {i}).", "emotion": e})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Two random models of different families: 5 layers of 4 heads (the head claims read the top 16 of
    20) and a residual width of 96 (the alignment reduces each model to 64 principal components)."""
    import torch
    from transformers import AutoModelForCausalLM

    from emocheck.testing import tiny_config, tiny_tokenizer

    out = []
    for family in ("llama", "qwen3"):
        config = tiny_config(family, n_layers=5)
        config.hidden_size, config.head_dim = 96, 24
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        path = tmp_path_factory.mktemp("models") / f"tiny-{family}"
        model.save_pretrained(path)
        tiny_tokenizer().save_pretrained(path)
        out.append(path)
    return out


def test_four_emotion_dataset_runs_every_phase_on_tiny_models(tiny_dirs, tmp_path):
    """joy, fear, anger and gratitude (not the embedded study) through Q1-Q3 and phases 4-8: every claim
    file is collected and run on two tiny random models; each claim is judged (a verdict, not an error)."""
    data = tmp_path / "four.jsonl"
    write_four_emotions(data, per_emotion=80)
    results = tmp_path / "results"
    # 80 prompts per emotion: 24 held out each, 12 in each half of the split-half k selection (k = 10 needs rank 10); 6 new tokens: the
    # patch window is 5
    sizes = ("base=smoke prompts_per_emotion=80 generation_prompts=6 new_tokens=6 bootstrap_resamples=200 "
             "patching.judged_prompts=6 patching.tuning_prompts=2 patching.rows_per_batch=64 "
             "heads.screen_prompts=all heads.exact_prompts=3 heads.exact_sets=4 heads.growth_sets=3 "
             "heads.direct_sets=319 heads.generation_prompts=6 "
             "circuits.attr_prompts=3 circuits.neutral_prompts=4 circuits.exact_prompts=1 circuits.held_out=3 "
             "circuits.random=9")
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET", "EMOCHECK_STUDY", "PYTEST_ADDOPTS")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "pytest", "hypotheses/", "--emocheck-dataset", str(data),
           "--emocheck-models", ",".join(map(str, tiny_dirs)), "--emocheck-profile", "four",
           "-o", f"emocheck_profiles=four: {sizes}", "--emocheck-results", str(results),
           "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", "-W", "ignore::DeprecationWarning",
           "-k", "not evaluator_validity", "-n", "2"]     # one worker per model (xdist groups by model)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode in (0, 1), done.stdout[-4000:] + done.stderr[-3000:]      # verdicts, not errors
    effects = pd.read_csv(results / "four" / "statistics" / "effect_sizes.csv")
    # Random tiny models write few or identical scores on so few prompts: a claim may be unjudgeable for
    # want of data (that is its finding), but nothing in the pipeline may fail.
    too_little = effects["error"].astype(str).str.contains(
        "cannot judge the claim: |a paired test needs at least 3", regex=True)
    bad = effects[(effects["status"] != "ok") & ~too_little]
    assert bad.empty, bad[["claim_id", "status", "error"]].to_string()
    assert (effects["status"] == "ok").mean() > 0.75
    emotions = effects["params"].map(lambda p: json.loads(p).get("emotion"))
    # every phase's families ran, on the dataset's emotions only
    families = set(effects["family"])
    for family in ("q1_vs_neutral", "q1_read_out", "q2_alignment_emotion_vs_random_groups", "q3_residual_patching",
                   "q3_patching_fluency", "q3_propagation", "q1_heads_writers", "q3_heads_ablation",
                   "q3_heads_generation", "q8_circuits_faithfulness", "q8_circuit_modulation"):
        assert family in families, (family, sorted(families))
    assert set(emotions.dropna()) == set(FOUR)
    for family in ("q3_propagation", "q8_circuits_faithfulness", "q1_heads_writers", "q3_heads_generation"):
        assert set(emotions[effects["family"] == family]) == set(FOUR), family
    # joy and fear (not in the embedded study) are judged on their own GoEmotions labels; they have no
    # prompting prefix, so the prompting claims are declared for gratitude and anger only
    q3 = effects[effects["family"] == "q3_residual_patching"]
    q3_params = q3["params"].map(json.loads)
    assert {(p["emotion"], p.get("evaluator")) for p in q3_params} >= {("joy", "joy"), ("fear", "fear"),
                                                                       ("anger", "sentiment"), ("gratitude", "politeness")}
    prompting = q3[q3["claim_id"].str.contains("test_prompting")]
    assert set(prompting["params"].map(lambda p: json.loads(p)["emotion"])) == {"gratitude", "anger"}
    samples = pd.read_parquet(next((results / "four" / "patching" / "residual").glob("*/claims/samples.parquet")))
    assert {"emo_joy", "emo_fear", "emo_anger", "emo_gratitude"} <= set(samples.columns)
    assert {"joy", "fear", "anger", "gratitude"} <= set(samples["emotion"])
