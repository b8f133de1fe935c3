"""Vectors out: llama.cpp control vectors (GGUF) and steering-vectors files, their layer conventions,
read back with the `gguf` package under llama.cpp's loader rules, and applied outside emocheck.

Conventions checked here (emocheck/export.py): emocheck's ``blocks.L.hook_resid_post`` is the output of
decoder block L, which llama.cpp steers as ``direction.L`` and steering-vectors as layer L;
``blocks.L.hook_resid_pre`` is the output of block L - 1. llama.cpp rejects ``direction.0``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from emocheck import cli, export
from emocheck.errors import ConfigError, DatasetError
from emocheck.patching.reference import generate_patched_hooks
from emocheck.patching.residual import PatchSpec, generation_kwargs, tokenize_prompts
from emocheck.representations.vectors import EmotionSubspaces, EmotionVectors
from emocheck.testing import tiny_model

EMOTIONS = ["joy", "anger"]
PROMPT = "The parcel came a day early."


def _vectors(d=64, layers=(0, 1, 2), seed=0) -> tuple[EmotionVectors, EmotionSubspaces]:
    g = torch.Generator().manual_seed(seed)
    tensors = {f"last/{site}/{kind}": torch.randn(len(layers), len(EMOTIONS), d, generator=g)
               for site in export.SITES for kind in ("vs_neutral", "vs_other", "specific")}
    subs = {}
    for site in export.SITES:
        for e in EMOTIONS:
            q, _ = torch.linalg.qr(torch.randn(d, 4, generator=g, dtype=torch.float64))
            subs[f"last/{site}/{e}/components"] = q.T.float().unsqueeze(0).repeat(len(layers), 1, 1)
    meta = {"key": "k123"}
    return (EmotionVectors("tiny-llama", list(layers), EMOTIONS, tensors, meta=meta),
            EmotionSubspaces("tiny-llama", list(layers), EMOTIONS, subs, meta=meta))


def test_layer_conventions():
    assert export.llamacpp_layer(5, "hook_resid_post") == 5
    assert export.llamacpp_layer(5, "hook_resid_pre") == 4
    assert export.steering_vectors_layer(0, "hook_resid_post") == 0
    assert export.steering_vectors_layer(3, "hook_resid_pre") == 2
    with pytest.raises(ConfigError, match="rejects direction.0"):
        export.llamacpp_layer(0, "hook_resid_post")
    with pytest.raises(ConfigError, match="layer >= 2 for hook_resid_pre"):
        export.llamacpp_layer(1, "hook_resid_pre")
    with pytest.raises(ConfigError, match="embeddings"):
        export.steering_vectors_layer(0, "hook_resid_pre")
    with pytest.raises(ConfigError, match="cannot be exported"):
        export.llamacpp_layer(2, "attn.hook_z")


@pytest.mark.parametrize("site,index", [("hook_resid_post", 2), ("hook_resid_pre", 1)])
def test_gguf_reads_back_with_llamacpp_names_and_the_right_layer(tmp_path, site, index):
    import gguf

    vecs, _ = _vectors()
    path = export.export_vector(vecs, "joy", 2, tmp_path / "joy.gguf", fmt="gguf", model_type="llama", site=site,
                                scale=2.0)
    reader = gguf.GGUFReader(str(path))
    assert [t.name for t in reader.tensors] == [f"direction.{index}"]
    assert reader.tensors[0].tensor_type == gguf.GGMLQuantizationType.F32
    cv = export.read_control_vector_gguf(path)
    assert list(cv.directions) == [index] and cv.model_hint == "llama" and cv.layer_count == 1
    np.testing.assert_array_equal(cv.directions[index], (2.0 * vecs.vector("joy", 2, site=site)).numpy())
    assert cv.metadata["site"] == f"blocks.2.{site}" and cv.metadata["emotion"] == "joy"
    assert cv.metadata["vectors_key"] == "k123"
    assert not list(tmp_path.glob(".*.tmp"))          # written atomically, nothing left behind


def test_a_subspace_direction_is_the_projection_emocheck_patches_with(tmp_path):
    from emocheck.patching.directions import subspace_direction

    vecs, subs = _vectors()
    path = export.export_vector(vecs, "anger", 1, tmp_path / "a.gguf", model_type="gemma3_text", subspaces=subs,
                                subspace_k=2)
    cv = export.read_control_vector_gguf(path)
    want = subspace_direction(vecs.vector("anger", 1), subs.components("anger", 1, k=2))
    np.testing.assert_allclose(cv.directions[1], want.float().numpy(), rtol=1e-6)
    assert cv.model_hint == "gemma3" and cv.metadata["subspace_k"] == "2"


def test_bad_requests_fail_before_anything_is_written(tmp_path):
    vecs, _ = _vectors()
    for kwargs, match in [(dict(layer=0), "rejects direction.0"), (dict(layer=1, fmt="onnx"), "unknown export format"),
                          (dict(layer=7), "out of range"), (dict(layer=1, emotion="awe"), "unknown emotion"),
                          (dict(layer=1, scale=float("nan")), "finite")]:
        args = {"emotion": "joy", "fmt": "gguf", **kwargs}
        with pytest.raises(ConfigError, match=match):
            export.export_vector(vecs, args.pop("emotion"), args.pop("layer"), tmp_path / "x.gguf", **args)
    assert not list(tmp_path.iterdir())


def _write_raw(path, tensors, arch="controlvector"):
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("tensors,arch,match", [
    ({"direction.0": np.ones(4, np.float32)}, "controlvector", "direction.0"),
    ({"direction.1": np.ones(4, np.float16)}, "controlvector", "needs F32"),
    ({"direction.1": np.ones(4, np.float32), "direction.2": np.ones(5, np.float32)}, "controlvector", "5 values"),
    ({"direction.1": np.ones((2, 4), np.float32)}, "controlvector", "not 1-D"),
    ({"layer.1": np.ones(4, np.float32)}, "controlvector", "not named direction"),
    ({"direction.1": np.ones(4, np.float32)}, "llama", "not a control vector"),
])
def test_the_reader_applies_llamacpps_loader_rules(tmp_path, tensors, arch, match):
    path = _write_raw(tmp_path / "bad.gguf", tensors, arch)
    with pytest.raises(DatasetError, match=match):
        export.read_control_vector_gguf(path)


def _block_output_hooks(loaded, directions: dict[int, np.ndarray]):
    """Apply a control vector the way llama.cpp's graph does: direction.N added to the output of
    block N (l_out), at every position."""
    handles = []
    for n, vec in directions.items():
        v = torch.as_tensor(vec, dtype=loaded.dtype)

        def hook(mod, args, output, _v=v):
            h = output[0] if isinstance(output, tuple) else output
            h += _v
        handles.append(loaded.layer_module(n).register_forward_hook(hook))
    return handles


def _emocheck_patch(loaded, site, layer, v, steps=6):
    """emocheck's own patch at blocks.<layer>.<site> on every position (patch_prompt=True) and token."""
    spec = PatchSpec(layers=(layer,), site=site, alpha=1.0, window=(0, steps), patch_prompt=True,
                     max_new_tokens=steps, stop_at_eos=False)
    res = generate_patched_hooks(loaded, [PROMPT], spec, v, record_site=True)
    return spec, res.new_tokens, res.meta["site_records"][layer][0]["after"]


def _hidden_index(site, layer):   # HF hidden_states[i] is the input of block i
    return layer + 1 if site == "hook_resid_post" else layer


@pytest.mark.parametrize("site,layer", [("hook_resid_post", 1), ("hook_resid_pre", 2)])
def test_a_control_vector_applied_at_its_llamacpp_layer_equals_emochecks_patch(tmp_path, site, layer):
    loaded = tiny_model("llama", n_layers=3)
    vecs, _ = _vectors(d=loaded.d_model)
    path = export.export_vector(vecs, "joy", layer, tmp_path / "v.gguf", model_type="llama", site=site)
    cv = export.read_control_vector_gguf(path)
    assert list(cv.directions) == [1]
    v = vecs.vector("joy", layer, site=site)
    spec, tokens, after = _emocheck_patch(loaded, site, layer, v)
    ids, mask = tokenize_prompts(loaded, [PROMPT])
    handles = _block_output_hooks(loaded, cv.directions)
    try:
        with torch.no_grad():
            hs = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            seqs = loaded.model.generate(input_ids=ids, attention_mask=mask, **generation_kwargs(loaded, spec))
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(hs[_hidden_index(site, layer)], after, rtol=0, atol=1e-6)
    assert torch.equal(seqs[:, ids.shape[1]:], tokens)
    # one layer off is a different model state: the convention is not a no-op
    with torch.no_grad():
        plain = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert (hs[_hidden_index(site, layer)] - plain[_hidden_index(site, layer)]).abs().max() > 0.1


@pytest.mark.parametrize("site,layer", [("hook_resid_post", 0), ("hook_resid_post", 1), ("hook_resid_pre", 2)])
def test_steering_vectors_applies_the_exported_file_exactly_like_emochecks_patch(tmp_path, site, layer):
    pytest.importorskip("steering_vectors")
    loaded = tiny_model("llama", n_layers=3)
    vecs, _ = _vectors(d=loaded.d_model)
    path = export.export_vector(vecs, "anger", layer, tmp_path / "v.safetensors", fmt="steering-vectors",
                                model_type="llama", site=site)
    sv = export.load_steering_vector(path)
    assert list(sv.layer_activations) == [export.steering_vectors_layer(layer, site)]
    v = vecs.vector("anger", layer, site=site)
    spec, tokens, after = _emocheck_patch(loaded, site, layer, v)
    ids, mask = tokenize_prompts(loaded, [PROMPT])
    with torch.no_grad(), sv.apply(loaded.model):
        hs = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        seqs = loaded.model.generate(input_ids=ids, attention_mask=mask, **generation_kwargs(loaded, spec))
    torch.testing.assert_close(hs[_hidden_index(site, layer)], after, rtol=0, atol=1e-6)
    assert torch.equal(seqs[:, ids.shape[1]:], tokens)


def test_a_steering_vector_file_is_safetensors_with_its_convention(tmp_path):
    vecs, _ = _vectors()
    path = export.export_vector(vecs, "joy", 2, tmp_path / "j.safetensors", fmt="steering-vectors", model_type="llama",
                                site="hook_resid_pre")
    layers, meta = export.read_steering_vector(path)
    assert list(layers) == [1] and meta["layer_type"] == "decoder_block" and meta["site"] == "blocks.2.hook_resid_pre"
    torch.testing.assert_close(layers[1], vecs.vector("joy", 2, site="hook_resid_pre"))
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DatasetError, match="not a readable safetensors"):
        export.read_steering_vector(tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    tiny = tiny_model("llama", n_layers=3)
    tiny.model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


def test_the_export_command_builds_or_reads_the_cached_vectors(tiny_dir, tmp_path, monkeypatch, capsys):
    from emocheck.representations.build import _MEMO, load_saved_vectors

    for key in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET"):
        monkeypatch.delenv(key, raising=False)
    results = tmp_path / "results"
    out = tmp_path / "gratitude.gguf"
    args = ["export", "--model", str(tiny_dir), "--emotion", "gratitude", "--layer", "2", "--profile", "smoke",
            "--results", str(results), "--out", str(out)]
    assert cli.main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "= llama.cpp direction 2" in printed and "layer 2: d = 64" in printed
    saved = sorted((results / "smoke" / "emotion_vectors").glob("*_vectors_token_based.safetensors"))
    assert len(saved) == 1
    vectors = load_saved_vectors(saved[0])
    cv = export.read_control_vector_gguf(out)
    np.testing.assert_array_equal(cv.directions[2], vectors.vector("gratitude", 2).numpy())
    # a second export reads the saved vectors: nothing is rebuilt
    stamp = saved[0].stat().st_mtime_ns
    _MEMO.clear()
    sv_out = tmp_path / "g.safetensors"
    assert cli.main(args[:-2] + ["--site", "hook_resid_pre", "--format", "steering-vectors", "--out", str(sv_out)]) == 0
    assert saved[0].stat().st_mtime_ns == stamp
    layers, _ = export.read_steering_vector(sv_out)
    assert list(layers) == [1]
    np.testing.assert_array_equal(layers[1].numpy(), vectors.vector("gratitude", 2, site="hook_resid_pre").numpy())
    # a layer llama.cpp cannot steer is refused before any model is loaded
    assert cli.main(args[:6] + ["0"] + args[7:]) == 2
    assert "rejects direction.0" in capsys.readouterr().err
    # an emotion the dataset lacks, or a layer the model lacks: one error before any extraction
    _MEMO.clear()
    other = tmp_path / "other-results"
    assert cli.main(args[:4] + ["awe"] + args[5:8] + ["smoke", "--results", str(other), "--out", str(out)]) == 2
    assert "unknown emotion 'awe'; the profile's dataset has anger, apology, gratitude" in capsys.readouterr().err
    assert cli.main(args[:6] + ["3"] + args[7:8] + ["smoke", "--results", str(other), "--out", str(out)]) == 2
    assert "layer 3 is out of range: this model has layers 0..2" in capsys.readouterr().err
    assert not other.exists() or not list(other.rglob("*.safetensors"))
    assert os.path.exists(out)
