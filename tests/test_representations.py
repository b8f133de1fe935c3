"""build_representations end to end on a tiny model: cached activations, vectors and subspaces are
saved, reused by a later process (no recomputation), and rebuilt when damaged."""
import pandas as pd
import pytest
import torch

from emocheck.representations import cache as activation_cache
from emocheck.representations import build as representations
from emocheck.profiles import Profile


@pytest.fixture
def tiny_setup(tmp_path, monkeypatch, results_tmp):
    from emocheck.testing import tiny_model

    tiny = tiny_model("llama", n_layers=2)
    rows = []
    for e, word in (("gratitude", "thanks"), ("anger", "furious"), ("apology", "sorry"), ("neutral", "room")):
        for i in range(12):
            text = f"msg {i} {word} about item {i * 7}"
            rows.append({"id": f"{e}-{i}", "emotion": e, "text": text, "trigger": word, "genre": "chat",
                         "formality": "informal", "explicitness": "explicit", "topic": "x"})
    pd.DataFrame(rows).to_csv(tmp_path / "emotion_prompts.csv", index=False)
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(representations, "model_identity", lambda name: tiny.identity)
    monkeypatch.setattr(representations, "model_n_layers", lambda name: tiny.n_layers)
    monkeypatch.setattr(representations, "load_model", lambda name: tiny)
    calls = {"vectors": 0}
    real = representations.compute_emotion_vectors

    def counting(*a, **kw):
        calls["vectors"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(representations, "compute_emotion_vectors", counting)
    return Profile(name="unit", models=("tiny",), prompts_per_emotion=None, batch_size=8), calls


def _fresh_process():
    representations._MEMO.clear()
    activation_cache.clear_memo()


def test_vectors_are_saved_and_reused(tiny_setup, results_tmp):
    profile, calls = tiny_setup
    _fresh_process()
    first = representations.build_representations("tiny", profile, progress=False)
    assert set(first.prompts["split"]) == {"train", "held_out"}
    assert (results_tmp / "unit" / "emotion_vectors" / "tiny-llama_vectors_token_based.safetensors").is_file()
    assert (results_tmp / "unit" / "emotion_subspaces" / "tiny-llama_subspaces.json").is_file()
    _fresh_process()
    second = representations.build_representations("tiny", profile, progress=False)
    assert calls["vectors"] == 1
    assert torch.equal(first.vectors.vector("anger", 1), second.vectors.vector("anger", 1))
    assert torch.equal(first.subspaces.components("anger", 1), second.subspaces.components("anger", 1))
    # the vectors are built from training prompts only
    train = first.prompts["split"] == "train"
    x = first.activations.get(1, "hook_resid_post", "last").double()
    em = torch.as_tensor(((first.prompts["emotion"] == "anger") & train).to_numpy().copy())
    ne = torch.as_tensor(((first.prompts["emotion"] == "neutral") & train).to_numpy().copy())
    assert torch.allclose(first.vectors.vector("anger", 1).double(), x[em].mean(0) - x[ne].mean(0), atol=1e-5)


def test_damaged_saved_vectors_are_recomputed(tiny_setup, results_tmp):
    profile, calls = tiny_setup
    _fresh_process()
    representations.build_representations("tiny", profile, progress=False)
    path = results_tmp / "unit" / "emotion_vectors" / "tiny-llama_vectors_token_based.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    _fresh_process()
    again = representations.build_representations("tiny", profile, progress=False)
    assert calls["vectors"] == 2
    assert again.vectors.vector("gratitude", 0).shape == (64,)


def _vectors_sidecar(results_tmp, kind="emotion_vectors", stem="tiny-llama_vectors_token_based"):
    return results_tmp / "unit" / kind / f"{stem}.json"


@pytest.mark.parametrize("edit", ["reorder_emotions", "reverse_layers", "subspace_emotions"])
def test_an_edited_vectors_sidecar_never_serves_another_emotions_vector(tiny_setup, results_tmp, edit):
    import json

    profile, calls = tiny_setup
    _fresh_process()
    first = representations.build_representations("tiny", profile, progress=False)
    anger, layer0 = first.vectors.vector("anger", 1), first.vectors.vector("anger", 0)
    if edit == "subspace_emotions":
        path = _vectors_sidecar(results_tmp, "emotion_subspaces", "tiny-llama_subspaces")
    else:
        path = _vectors_sidecar(results_tmp)
    meta = json.loads(path.read_text())
    if edit == "reverse_layers":
        meta["layers"] = meta["layers"][::-1]
    else:
        meta["emotions"] = meta["emotions"][::-1]
    path.write_text(json.dumps(meta))
    _fresh_process()
    again = representations.build_representations("tiny", profile, progress=False)
    assert calls["vectors"] == 2                     # detected and recomputed
    assert again.emotions == first.emotions and again.layers == first.layers
    assert torch.equal(again.vectors.vector("anger", 1), anger)
    assert torch.equal(again.vectors.vector("anger", 0), layer0)
    assert torch.equal(again.subspaces.components("anger", 1), first.subspaces.components("anger", 1))


def test_load_saved_vectors_refuses_an_edited_sidecar(tiny_setup, results_tmp):
    import json

    from emocheck.errors import DatasetError

    profile, _ = tiny_setup
    _fresh_process()
    representations.build_representations("tiny", profile, progress=False)
    path = _vectors_sidecar(results_tmp)
    vec_file = path.with_suffix(".safetensors")
    assert representations.load_saved_vectors(vec_file).emotions
    meta = json.loads(path.read_text())
    meta["emotions"] = meta["emotions"][::-1]
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="rebuild it"):
        representations.load_saved_vectors(vec_file)
