"""Extension points: a plugin package written into tmp_path (a module plus a dist-info folder with
entry_points.txt, on sys.path like an installed package) adds an architecture map for a model family
emocheck does not know and an evaluator; a broken plugin is one clear error naming it."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from emocheck import extensions
from emocheck.errors import ConfigError
from emocheck.models import architectures
from emocheck.evaluators import registry

PLUGIN = '''
from transformers import LlamaConfig, LlamaForCausalLM

from emocheck.evaluators.base import Evaluator
from emocheck.models.architectures import ArchitectureMap

IMPORTED = []
IMPORTED.append(1)


class TinyFamConfig(LlamaConfig):
    model_type = "tinyfam"


class TinyFamForCausalLM(LlamaForCausalLM):
    config_class = TinyFamConfig


TINYFAM = ArchitectureMap("tinyfam", layers="model.layers", attn_out_proj="self_attn.o_proj", mlp_out="mlp",
                          final_norm="model.norm")


def not_a_map():
    return {"layers": "model.layers"}


class LengthJudge(Evaluator):
    name = "length-judge"
    dimension = "length"
    labels = ("long",)
    multi_label = False
    backend = "plugin"
    model_id = "tinyfam-plugin 0.1"

    def _score_batch(self, texts, use_cache=True):
        import numpy as np

        return np.array([[min(len(t) / 100.0, 1.0)] for t in texts])
'''

ENTRY_POINTS = '''
[emocheck.architectures]
tinyfam = tinyfam_plugin:TINYFAM
badfam = tinyfam_plugin:not_a_map
gonefam = tinyfam_plugin_gone:MAP

[emocheck.evaluators]
length-judge = tinyfam_plugin:LengthJudge
broken-judge = tinyfam_plugin_gone:make
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "tinyfam_plugin").mkdir(parents=True)
    (site / "tinyfam_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "tinyfam_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfam-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    saved = (dict(architectures.FAMILIES), dict(architectures.MODEL_TYPES), dict(registry._FACTORIES))
    monkeypatch.syspath_prepend(str(site))
    extensions.forget_loaded()
    yield site
    architectures.FAMILIES.clear()
    architectures.FAMILIES.update(saved[0])
    architectures.MODEL_TYPES.clear()
    architectures.MODEL_TYPES.update(saved[1])
    registry._FACTORIES.clear()
    registry._FACTORIES.update(saved[2])
    for key in [k for k in registry._INSTANCES if k[0] in ("length-judge", "broken-judge")]:
        del registry._INSTANCES[key]
    extensions.forget_loaded()
    sys.modules.pop("tinyfam_plugin", None)


def _tinyfam_model(n_layers=3):
    from emocheck.models.registry import LoadedModel, ModelSpec
    from emocheck.testing import tiny_tokenizer

    mod = sys.modules.get("tinyfam_plugin") or __import__("tinyfam_plugin")
    torch.manual_seed(0)
    config = mod.TinyFamConfig(num_hidden_layers=n_layers, hidden_size=64, num_attention_heads=4,
                               num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                               vocab_size=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = mod.TinyFamForCausalLM(config).eval().requires_grad_(False)
    arch = architectures.architecture_for(model.config)          # found through the entry point
    spec = ModelSpec("tiny-tinyfam", "tiny")
    return LoadedModel("tiny-tinyfam", spec, model, tiny_tokenizer(), arch, torch.device("cpu"), torch.float32,
                       {"name": "tiny-tinyfam", "source": "tiny"})


def test_without_the_plugin_the_family_is_unknown_with_a_pointer_to_the_extension_point():
    class Config:
        model_type = "tinyfam"

    with pytest.raises(ConfigError, match="no architecture mapping for model_type 'tinyfam'.*emocheck.architectures"):
        architectures.architecture_for(Config())


def test_a_new_family_runs_through_extraction_with_the_plugins_map(plugin):
    from emocheck.representations.extraction import extract_activations, hf_hidden_states

    assert "tinyfam_plugin" not in sys.modules          # nothing imported until the family is met
    loaded = _tinyfam_model()
    assert loaded.arch.family == "tinyfam" and architectures.MODEL_TYPES["tinyfam"] == "tinyfam"
    texts = ["I am so grateful for this.", "Leave me alone, this is infuriating!", "The bus leaves at nine."]
    acts = extract_activations(loaded, texts, positions=("last",), sites=("hook_resid_pre", "hook_resid_post"),
                               progress=False)["last"]
    # the same numbers from Hugging Face's own output_hidden_states (index i: the input of block i)
    hs = hf_hidden_states(loaded, texts)
    for layer in range(loaded.n_layers):
        torch.testing.assert_close(acts[f"blocks.{layer}.hook_resid_pre"], hs[layer], rtol=1e-5, atol=1e-5)
    for layer in range(loaded.n_layers - 1):       # the last entry of hidden_states is after the final norm
        torch.testing.assert_close(acts[f"blocks.{layer}.hook_resid_post"], hs[layer + 1], rtol=1e-5, atol=1e-5)


def test_an_evaluator_plugin_is_listed_without_import_and_built_on_use(plugin):
    assert "length-judge" in registry.available_evaluators()
    assert "tinyfam_plugin" not in sys.modules
    ev = registry.get_evaluator("length-judge")
    assert ev.backend == "plugin" and "tinyfam_plugin" in sys.modules
    df = registry.score_texts(["short", "x" * 300], ["length-judge"])
    np.testing.assert_allclose(df["score"].to_numpy(), [0.05, 1.0])


def test_the_registration_api_works_without_entry_points():
    saved = (dict(architectures.FAMILIES), dict(architectures.MODEL_TYPES))
    try:
        amap = architectures.ArchitectureMap("myfam", layers="model.layers", attn_out_proj="self_attn.o_proj",
                                             mlp_out="mlp", final_norm="model.norm")
        architectures.register_architecture(amap, model_types=["myfam", "myfam2"])

        class Config:
            model_type = "myfam2"

        assert architectures.architecture_for(Config()) is amap
        other = architectures.ArchitectureMap("myfam", layers="x", attn_out_proj="a.b", mlp_out="m", final_norm="n")
        with pytest.raises(ConfigError, match="already registered"):
            architectures.register_architecture(other)
        with pytest.raises(ConfigError, match="already map to another family"):
            architectures.register_architecture(
                architectures.ArchitectureMap("x", layers="x", attn_out_proj="a.b", mlp_out="m", final_norm="n"),
                model_types=["llama"])
    finally:
        architectures.FAMILIES.clear()
        architectures.FAMILIES.update(saved[0])
        architectures.MODEL_TYPES.clear()
        architectures.MODEL_TYPES.update(saved[1])


@pytest.mark.parametrize("model_type,match", [
    ("badfam", r"entry point 'badfam = tinyfam_plugin:not_a_map' \(group emocheck.architectures from "
               r"tinyfam-plugin 0.1\) gave dict, not an emocheck.models.architectures.ArchitectureMap"),
    ("gonefam", r"entry point 'gonefam = tinyfam_plugin_gone:MAP' .* failed to load: ModuleNotFoundError"),
])
def test_a_broken_architecture_plugin_is_one_error_naming_it(plugin, model_type, match):
    class Config:
        pass

    Config.model_type = model_type
    with pytest.raises(ConfigError, match=match):
        architectures.architecture_for(Config())
    assert model_type not in architectures.MODEL_TYPES


def test_a_broken_evaluator_plugin_troubles_only_its_users(plugin):
    with pytest.raises(ConfigError, match=r"entry point 'broken-judge = tinyfam_plugin_gone:make'.*failed to load"):
        registry.get_evaluator("broken-judge")
    assert registry.get_evaluator("length-judge").backend == "plugin"   # the other plugin still works
    with pytest.raises(ConfigError, match="unknown evaluator 'no-such-judge'"):
        registry.get_evaluator("no-such-judge")
