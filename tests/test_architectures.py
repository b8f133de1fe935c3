import pytest
import torch

from emocheck.models.architectures import FAMILIES, MODEL_TYPES, parse_site, resolve, site_module_path, site_name
from emocheck.errors import ConfigError


def test_canonical_site_names_are_pinned():
    assert site_name(5, "hook_resid_post") == "blocks.5.hook_resid_post"
    assert parse_site("blocks.5.hook_resid_pre") == (5, "hook_resid_pre")
    assert parse_site("blocks.0.attn.hook_z") == (0, "attn.hook_z")
    assert parse_site("blocks.11.hook_mlp_out", n_layers=12) == (11, "hook_mlp_out")


@pytest.mark.parametrize("bad", ["blocks.x.hook_resid_post", "layer.3.resid", "blocks.3.hook_attn_out", ""])
def test_unknown_site_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="unknown site"):
        parse_site(bad)


def test_layer_out_of_range_names_the_range():
    with pytest.raises(ConfigError, match=r"layer 7 is out of range: this model has layers 0..5"):
        parse_site("blocks.7.hook_resid_post", n_layers=6)


def test_every_model_type_maps_to_a_family():
    assert set(MODEL_TYPES.values()) <= set(FAMILIES)


def test_mapping_resolves_real_modules(tiny_any):
    """Every canonical site of every layer resolves to a module of the right shape."""
    m = tiny_any
    for layer in range(m.n_layers):
        for kind in ("hook_resid_pre", "hook_resid_post", "attn.hook_z", "hook_mlp_out"):
            path, side = site_module_path(m.arch, layer, kind)
            assert isinstance(resolve(m.model, path), torch.nn.Module), path
    proj = resolve(m.model, site_module_path(m.arch, 0, "attn.hook_z")[0])
    # hook_z is the projection's input: n_heads * head_dim features.
    assert proj.weight.shape[-1 if not m.arch.family == "gpt2" else 0] == m.n_heads * m.head_dim


def test_hook_sites_match_plain_pytorch_hooks(tiny_any):
    """resid_post at block L equals HF hidden_states[L+1]; mlp_out plus attention writes add up."""
    m = tiny_any
    captured = {}
    path, _ = site_module_path(m.arch, 1, "hook_mlp_out")

    def keep(name):
        def hook(mod, inputs, output):  # returns None: a forward hook that returns a value replaces the output
            captured[name] = output[0] if isinstance(output, tuple) else output
        return hook

    h = resolve(m.model, path).register_forward_hook(keep("mlp"))
    h2 = m.layer_module(1).register_forward_hook(keep("post"))
    ids = m.tokenizer(["Hello there"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = m.model(input_ids=ids, output_hidden_states=True)
    h.remove(), h2.remove()
    assert torch.allclose(captured["post"], out.hidden_states[2])
    assert captured["mlp"].shape == captured["post"].shape
