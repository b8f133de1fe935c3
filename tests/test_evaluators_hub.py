"""Hub classifiers through the same interface: offline error, fallback, and a local model end to end."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from emocheck.errors import ModelUnavailableError
from emocheck.evaluators import get_evaluator
from emocheck.evaluators.hub import HubEvaluator
from emocheck.evaluators.registry import _INSTANCES

HUB_ID = "cardiffnlp/twitter-roberta-base-sentiment-latest"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache: nothing to find
    for key in [k for k in _INSTANCES if k[0].startswith("hub:")]:
        del _INSTANCES[key]
    yield
    for key in [k for k in _INSTANCES if k[0].startswith("hub:")]:
        del _INSTANCES[key]


def test_offline_hub_evaluator_fails_with_clear_message(offline):
    with pytest.raises(ModelUnavailableError) as ei:
        get_evaluator(f"hub:{HUB_ID}", fallback=False)
    msg = str(ei.value)
    assert HUB_ID in msg
    assert "HF_HUB_OFFLINE" in msg and "fallback=True" in msg and "huggingface-cli download" in msg


def test_offline_hub_alias_fails_too(offline):
    with pytest.raises(ModelUnavailableError, match="SamLowe/roberta-base-go_emotions"):
        get_evaluator("hub-emotion", fallback=False)


def test_fallback_runs_embedded_and_records_it(offline):
    ev = get_evaluator(f"hub:{HUB_ID}", fallback=True)
    embedded = get_evaluator("sentiment")
    texts = ["thanks so much, this is great", "this is awful"]
    df = ev.score(texts)
    assert (df["evaluator"] == "sentiment").all()
    assert (df["backend"] == embedded.backend).all() and (df["model_id"] == embedded.model_id).all()
    assert (df["requested"] == f"hub:{HUB_ID}").all()
    assert df.attrs["requested"] == f"hub:{HUB_ID}" and "could not be loaded" in df.attrs["fallback_reason"]
    np.testing.assert_array_equal(df["score"].to_numpy(), embedded.score(texts)["score"].to_numpy())


def test_fallback_env_switch(offline, monkeypatch):
    monkeypatch.setenv("EMOCHECK_EVALUATOR_FALLBACK", "1")
    ev = get_evaluator("hub-politeness")
    assert ev.score(["please sit down"]).attrs["evaluator"] == "politeness"


def test_fallback_needs_a_known_dimension(offline):
    with pytest.raises(ModelUnavailableError, match="dimension"):
        get_evaluator("hub:someone/unknown-classifier", fallback=True)


@pytest.fixture(scope="module")
def tiny_local_classifier(tmp_path_factory):
    """A randomly initialised 2-layer BERT sentiment classifier saved locally (no download)."""
    from transformers import BertConfig, BertForSequenceClassification

    from emocheck.evaluators.encoder import minilm_path

    d = tmp_path_factory.mktemp("tiny_clf")
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path() / f, d / f)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128,
                     id2label={0: "NEGATIVE", 1: "neutral", 2: "Positive"},
                     label2id={"NEGATIVE": 0, "neutral": 1, "Positive": 2})
    BertForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)
    return str(d)


def test_local_hub_style_classifier_end_to_end(tiny_local_classifier, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ev = HubEvaluator(tiny_local_classifier)
    assert ev.labels == ("negative", "neutral", "positive") and ev.dimension == "sentiment"
    assert ev.backend == "transformers-pipeline" and ev.model_id == tiny_local_classifier
    texts = ["good", "bad", "", "word " * 300]
    df = ev.score(texts)
    probs = df.loc[[0, 1, 3], ["negative", "neutral", "positive"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(df.loc[[0, 1, 3], "score"], probs[:, 2] - probs[:, 0], atol=1e-12)
    assert df["empty"].tolist() == [False, False, True, False]
    assert df["truncated"].tolist() == [False, False, False, True]
    assert df.attrs["model_id"] == tiny_local_classifier
