"""The evaluators' training data: committed heads are fitted from the current data (no stale heads), the
data hash follows every training file, and no training sentence comes from the prompts claims judge."""
import json
import re
import shutil

import pandas as pd
import pytest

from emocheck.evaluators import train
from emocheck.evaluators.heads import LinearHead
from emocheck.evaluators.paths import data_dir, heads_dir

REPO_DATA = data_dir().parent


def test_committed_heads_were_fitted_from_the_current_training_data():
    """Editing a training file, label_map.json or the augmentation without refitting fails here:
    run `python -m emocheck.evaluators.train` and commit the heads."""
    want = train.training_data_hash()
    for name in ("emotion", "sentiment", "politeness"):
        head = LinearHead.load(heads_dir() / f"{name}.safetensors")
        assert head.meta.get("training_data_sha256") == want, f"{name} head is stale: refit it"
    assert json.loads((data_dir() / "thresholds.json").read_text())["training_data_sha256"] == want


def test_data_hash_changes_with_any_training_file(tmp_path, monkeypatch):
    copy = tmp_path / "evaluators"
    shutil.copytree(data_dir(), copy)
    monkeypatch.setenv("EMOCHECK_EVALUATOR_DATA", str(copy))
    before = train.training_data_hash()
    for name in train.training_files():
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"One more sentence.,neutral\n")
        assert train.training_data_hash() != before, name
        path.write_bytes(original)
    assert train.training_data_hash() == before
    label_map = json.loads((copy / "label_map.json").read_text())
    label_map["files"].append("emotion_prompts.csv")
    (copy / "label_map.json").write_text(json.dumps(label_map))
    with pytest.raises(ValueError, match="never trained"):
        train.training_files()


def _ngrams(text, n=8):
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_training_sentence_comes_from_the_prompts_claims_judge():
    """Neither identical texts nor a shared run of 8 words (stock phrases of 6, such as "please accept my sincere apologies for the", are shared by ordinary messages) with data/emotion_prompts.csv or
    data/generation_prompts.csv (the evaluators must hold on text they never saw)."""
    sentences = train.load_sentences()["text"].tolist()
    judged = pd.concat([pd.read_csv(REPO_DATA / "emotion_prompts.csv")["text"],
                        pd.read_csv(REPO_DATA / "generation_prompts.csv")["text"]]).tolist()
    assert not set(sentences) & set(judged)
    judged_grams = set().union(*(_ngrams(t) for t in judged))
    shared = [s for s in sentences if _ngrams(s) & judged_grams]
    assert not shared, shared[:5]
