"""The evaluator interface, provenance, batching, caching and thread handling (embedded backends)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emocheck.errors import ConfigError
from emocheck.evaluators import (
    GOEMOTIONS_LABELS, available_evaluators, clear_cache, get_evaluator, score_texts,
)

TEXTS = [
    "Thank you so much for helping me with the move.",
    "I am furious that you lied to me again.",
    "I'm so sorry I missed your call.",
    "The meeting is at three in the main room.",
    "could you please send me the file when you have a moment",
]
EMBEDDED = ("sentiment", "sentiment-vader", "politeness", "emotion")


@pytest.fixture(scope="module")
def evs():
    return {n: get_evaluator(n) for n in EMBEDDED}


def test_registry_lists_embedded_and_hub_names():
    names = available_evaluators()
    for n in EMBEDDED:
        assert n in names
    assert any(n.startswith("hub") for n in names)
    with pytest.raises(ConfigError, match="unknown evaluator"):
        get_evaluator("no-such-evaluator")


def test_instances_are_shared(evs):
    assert get_evaluator("politeness") is evs["politeness"]


@pytest.mark.parametrize("name", EMBEDDED)
def test_interface_and_provenance(evs, name):
    ev = evs[name]
    assert ev.name == name
    assert ev.dimension in ("sentiment", "politeness", "emotion")
    assert isinstance(ev.labels, tuple) and len(ev.labels) >= 2
    assert isinstance(ev.multi_label, bool)
    assert ev.backend and ev.model_id
    df = ev.score(TEXTS)
    assert isinstance(df, pd.DataFrame) and len(df) == len(TEXTS)
    for lab in ev.labels:
        assert lab in df.columns and np.isfinite(df[lab]).all()
    expected = {"evaluator": name, "backend": ev.backend, "model_id": ev.model_id, "requested": name}
    assert ev.provenance() == expected
    for col, val in expected.items():
        assert (df[col] == val).all()
        assert df.attrs[col] == val
    assert not df["empty"].any() and not df["truncated"].any()
    if ev.summary:
        assert df[ev.summary].between(-1, 1).all()


def test_model_ids_distinguish_instruments(evs):
    ids = {evs[n].model_id for n in EMBEDDED}
    assert len(ids) == len(EMBEDDED), "every instrument must carry its own model id"
    assert evs["emotion"].model_id.startswith("sentence-transformers/all-MiniLM-L6-v2+head:emotion@")
    assert evs["sentiment-vader"].model_id.startswith("vaderSentiment==")
    assert evs["emotion"].model_id.endswith("+v" + evs["emotion"].version)
    assert evs["emotion"].fingerprint != evs["sentiment"].fingerprint


def test_multi_sentence_texts_are_scored_per_sentence_too(evs):
    from emocheck.evaluators.minilm import split_units

    assert split_units("no sentence punctuation here") == ["no sentence punctuation here"]
    text = "The meeting moved to Thursday. The agenda is attached. Thank you so much for organising it!"
    assert split_units(text)[1:] == ["The meeting moved to Thursday.", "The agenda is attached.",
                                     "Thank you so much for organising it!"]
    ev = evs["emotion"]
    whole = ev.head.predict(ev.encoder.encode([text]))[0]
    parts = ev.head.predict(ev.encoder.encode(split_units(text)))
    got = ev.score_array([text])[0]
    g, n = ev.labels.index("gratitude"), ev.labels.index("neutral")
    assert got[g] == pytest.approx(parts[:, g].max()) and got[g] >= whole[g]
    assert got[n] == pytest.approx(parts[:, n].min())
    pol = evs["politeness"]
    np.testing.assert_allclose(pol.score_array([text])[0], pol.head.predict(pol.encoder.encode(split_units(text))).mean(0))


def test_label_sets(evs):
    assert evs["emotion"].labels == GOEMOTIONS_LABELS and len(GOEMOTIONS_LABELS) == 28
    assert evs["emotion"].multi_label and not evs["sentiment"].multi_label
    assert evs["sentiment"].labels == ("negative", "neutral", "positive")
    assert evs["politeness"].labels == ("impolite", "neutral", "polite")
    df = evs["sentiment"].score(TEXTS)
    np.testing.assert_allclose(df[list(evs["sentiment"].labels)].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(df["score"], df["positive"] - df["negative"], atol=1e-12)


def test_scores_point_the_right_way(evs):
    s = evs["sentiment"].score(TEXTS)["score"]
    assert s[0] > 0.3 and s[1] < -0.3
    p = evs["politeness"].score(TEXTS)["score"]
    assert p[0] > p[1] and p[4] > p[1]
    e = evs["emotion"].score(TEXTS)
    assert e.loc[0, "gratitude"] > e.loc[1, "gratitude"]
    assert e.loc[1, "anger"] > e.loc[0, "anger"]
    assert e.loc[2, "remorse"] > max(e.loc[0, "remorse"], e.loc[1, "remorse"])
    assert e.loc[3, "neutral"] > e.loc[1, "neutral"]


@pytest.mark.parametrize("name", EMBEDDED)
def test_batch_equals_one_by_one(evs, name):
    ev = evs[name]
    batch = ev.score_array(TEXTS, use_cache=False)
    single = np.vstack([ev.score_array([t], use_cache=False) for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=2e-5)


def test_duplicates_in_a_batch_get_identical_scores(evs):
    arr = evs["emotion"].score_array([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert np.array_equal(arr[0], arr[2])


def test_cache_hit_does_not_reencode(evs):
    ev = evs["politeness"]
    enc = ev.encoder
    clear_cache()
    enc.clear_cache()
    texts = [f"cache probe number {i}, thanks a lot" for i in range(7)]
    calls, n = enc.calls, enc.texts_encoded
    first = ev.score(texts)
    assert enc.calls == calls + 1 and enc.texts_encoded == n + len(texts)
    second = ev.score(texts)
    assert enc.calls == calls + 1, "a cached text must not be encoded again"
    pd.testing.assert_frame_equal(first, second)
    # the other MiniLM heads reuse the embeddings: still no new forward pass
    evs["emotion"].score(texts)
    evs["sentiment"].score(texts)
    assert enc.calls == calls + 1
    # use_cache=False really recomputes
    evs["emotion"].score(texts, use_cache=False)
    assert enc.calls == calls + 2


def test_cache_is_keyed_by_evaluator(evs):
    a = evs["sentiment"].score(["a quiet walk in the park"])
    b = evs["sentiment-vader"].score(["a quiet walk in the park"])
    assert a.attrs["model_id"] != b.attrs["model_id"]
    assert a.loc[0, "score"] != b.loc[0, "score"]


def _thread_spy(enc, monkeypatch) -> list[int]:
    """The torch thread count of every call into the encoder's model, in order."""
    import torch

    seen = []
    real = enc.model.encode

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(enc.model, "encode", spy)
    return seen


def test_thread_count_set_inside_and_restored(evs, monkeypatch):
    import torch

    ev = evs["sentiment"]
    enc = ev.encoder
    seen = _thread_spy(enc, monkeypatch)
    monkeypatch.setenv("EMOCHECK_EVALUATOR_THREADS", "1")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ev.score([f"thread probe {np.random.rand()}"], use_cache=False)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_encoder_uses_the_process_thread_count_by_default(evs, monkeypatch):
    import torch

    enc = evs["sentiment"].encoder
    seen = _thread_spy(enc, monkeypatch)
    monkeypatch.delenv("EMOCHECK_EVALUATOR_THREADS", raising=False)
    old = torch.get_num_threads()
    try:
        for n in (2, 1):
            torch.set_num_threads(n)
            evs["sentiment"].score([f"default thread probe {n} {np.random.rand()}"], use_cache=False)
        assert seen == [2, 1]
        monkeypatch.setenv("EMOCHECK_EVALUATOR_THREADS", "nope")
        with pytest.raises(ConfigError, match="EMOCHECK_EVALUATOR_THREADS"):
            evs["sentiment"].score(["bad thread setting probe"], use_cache=False)
    finally:
        torch.set_num_threads(old)


def test_embeddings_agree_across_thread_counts(evs):
    import torch

    enc = evs["sentiment"].encoder
    texts = [f"thank you so much for item {i}, it arrived {'late' if i % 2 else 'early'}" for i in range(40)]
    old = torch.get_num_threads()
    try:
        one = enc.encode(texts, threads=1, use_cache=False)
        two = enc.encode(texts, threads=2, use_cache=False)
    finally:
        torch.set_num_threads(old)
    assert np.allclose(one, two, rtol=0, atol=1e-6)


def test_thread_count_restored_after_error(evs, monkeypatch):
    import torch

    enc = evs["sentiment"].encoder

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(enc.model, "encode", boom)
    monkeypatch.setenv("EMOCHECK_EVALUATOR_THREADS", "1")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            evs["sentiment"].score(["this text is never encoded xyz"], use_cache=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_vader_matches_vadersentiment_directly(evs):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    df = evs["sentiment-vader"].score(TEXTS)
    for i, t in enumerate(TEXTS):
        r = sia.polarity_scores(t)
        assert df.loc[i, "score"] == r["compound"]
        assert (df.loc[i, "negative"], df.loc[i, "neutral"], df.loc[i, "positive"]) == (r["neg"], r["neu"], r["pos"])


def test_score_texts_long_format(evs):
    long = score_texts(TEXTS[:3], ["sentiment", "politeness", "emotion"])
    assert list(long.columns) == ["text_index", "evaluator", "backend", "model_id", "requested", "label", "score"]
    assert set(long["evaluator"]) == {"sentiment", "politeness", "emotion"}
    n_rows = 3 * ((3 + 1) + (3 + 1) + 28)
    assert len(long) == n_rows
    wide = evs["emotion"].score(TEXTS[:3])
    got = long[(long.evaluator == "emotion") & (long.label == "gratitude")].sort_values("text_index")["score"].to_numpy()
    np.testing.assert_array_equal(got, wide["gratitude"].to_numpy())
    for ev_name, grp in long.groupby("evaluator"):
        assert grp["model_id"].nunique() == 1 and grp["model_id"].iloc[0] == evs[ev_name].model_id


def test_emotion_scores_are_calibrated_and_comparable(evs):
    """The documented comparability check, on the separately written validation set:

    (1) on neutral sentences every emotion label's median score is low (< 0.25) - the labels share a
        common zero point, so a high value means the same thing for every label;
    (2) for each emotion group the group's own label has the highest mean score of all 27 emotion
        labels (excluding 'neutral') - labels are on one scale, so they can be compared;
    (3) a label's score is a fixed function of the text: the same text scores the same whatever batch
        it is in (see test_batch_equals_one_by_one), so scores are comparable across texts.
    """
    from emocheck.evaluators.validation import GROUP_LABEL, load_validation

    val = load_validation()
    ev = evs["emotion"]
    df = ev.score(val["text"].tolist())
    neutral = df[val["group"] == "neutral"]
    emo_labels = [l for l in ev.labels if l != "neutral"]
    med = neutral[emo_labels].median()
    assert (med < 0.25).all(), med[med >= 0.25]
    for g in ("gratitude", "anger", "apology", "joy", "sadness", "fear", "disgust", "love", "nervousness", "pride"):
        lab = GROUP_LABEL.get(g, g)
        means = df[val["group"] == g][emo_labels].mean()
        assert means.idxmax() == lab, (g, means.sort_values(ascending=False).head(3).to_dict())
    assert set(ev.thresholds) == set(ev.labels)
    assert all(0 < t < 1 for t in ev.thresholds.values())


def test_validation_specificity_regression(evs):
    """Guards the separation measured by benchmarks/evaluator_separation.py (MiniLM heads >= 0.9)."""
    from emocheck.evaluators.validation import CONTRASTS, separation_table

    tab = separation_table(evs, [c for c in CONTRASTS if c.kind == "specificity" and c.evaluator != "sentiment-vader"])
    low = tab[tab["auc"] < 0.9]
    assert low.empty, low[["contrast", "auc"]].to_string()


def test_predict_labels_uses_thresholds(evs):
    ev = evs["emotion"]
    got = ev.predict_labels(["Thank you so much for your help!", "The bus leaves at noon."])
    assert "gratitude" in got[0] and "anger" not in got[0]
    assert "neutral" in got[1] and "gratitude" not in got[1]


def test_head_files_have_no_pickle_and_carry_metadata():
    from emocheck.evaluators.heads import LinearHead
    from emocheck.evaluators.paths import heads_dir

    for name in ("sentiment", "politeness", "emotion"):
        path = heads_dir() / f"{name}.safetensors"
        head = LinearHead.load(path)
        assert head.W.shape == (len(head.labels), 384) and head.b.shape == (len(head.labels),)
        assert "l2" in head.meta and head.meta["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "platt" in LinearHead.load(heads_dir() / "emotion.safetensors").meta
