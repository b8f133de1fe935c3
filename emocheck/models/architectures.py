"""Canonical hook sites and one small mapping per architecture family.

Site names follow TransformerLens (`blocks.5.hook_resid_post`), so a claim reads the same on every
model. Each family is one `ArchitectureMap` row: where the decoder blocks live, which module's input
holds the per-head attention output (`hook_z`, the input of the attention output projection), and
which module's output is the MLP's write into the residual stream. A new family is one new row.

    blocks.{L}.hook_resid_pre   input of block L (= resid_post of block L-1; embeddings for L = 0)
    blocks.{L}.hook_resid_post  output of block L
    blocks.{L}.attn.hook_z      per-head attention output before the output projection,
                                [batch, pos, n_heads * head_dim], head h is slice h*head_dim:(h+1)*head_dim
    blocks.{L}.hook_mlp_out     what the MLP adds to the residual stream
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from emocheck.errors import ConfigError

SITE_KINDS = ("hook_resid_pre", "hook_resid_post", "attn.hook_z", "hook_mlp_out")
_SITE_RE = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|attn\.hook_z|hook_mlp_out)$")


@dataclass(frozen=True)
class ArchitectureMap:
    family: str
    layers: str            # dotted path of the ModuleList of decoder blocks, from the CausalLM module
    attn_out_proj: str     # relative to a block: the projection whose INPUT is hook_z
    mlp_out: str           # relative to a block: the module whose OUTPUT is hook_mlp_out
    final_norm: str        # from the CausalLM module
    lm_head: str = "lm_head"
    # Config attribute names (they differ between families).
    n_layers_attr: str = "num_hidden_layers"
    n_heads_attr: str = "num_attention_heads"
    d_model_attr: str = "hidden_size"
    text_config_attr: str | None = None   # multimodal wrappers keep the text config here
    # Per-head access (emocheck.heads): the attention module that returns (output, pattern), and the
    # norm that some families (Gemma 3) apply to the attention output before the residual add.
    attn_post_norm: str | None = None     # relative to a block; None: o_proj's output is the write
    n_kv_heads_attr: str = "num_key_value_heads"
    # Relative to a block: the module that computes the MLP from its input (mlp_out itself, or a module
    # inside the path to it). A last-token run whose row replaces the MLP's write skips it for that row
    # (emocheck.circuits.components), so it must be a tensor -> tensor module on the MLP path only.
    mlp_block: str = "mlp"

    @property
    def attn_module(self) -> str:
        """Relative to a block: the attention module (the parent of the output projection)."""
        return self.attn_out_proj.rsplit(".", 1)[0]


FAMILIES: dict[str, ArchitectureMap] = {
    "gpt2": ArchitectureMap(
        "gpt2", layers="transformer.h", attn_out_proj="attn.c_proj", mlp_out="mlp",
        final_norm="transformer.ln_f", n_layers_attr="n_layer", n_heads_attr="n_head", d_model_attr="n_embd",
    ),
    "gpt_neox": ArchitectureMap(
        "gpt_neox", layers="gpt_neox.layers", attn_out_proj="attention.dense", mlp_out="mlp",
        final_norm="gpt_neox.final_layer_norm", lm_head="embed_out",
    ),
    "gpt_neo": ArchitectureMap(
        "gpt_neo", layers="transformer.h", attn_out_proj="attn.attention.out_proj", mlp_out="mlp",
        final_norm="transformer.ln_f", n_layers_attr="num_layers", n_heads_attr="num_heads",
    ),
    "llama": ArchitectureMap(
        "llama", layers="model.layers", attn_out_proj="self_attn.o_proj", mlp_out="mlp", final_norm="model.norm",
    ),
    "qwen3": ArchitectureMap(
        "qwen3", layers="model.layers", attn_out_proj="self_attn.o_proj", mlp_out="mlp", final_norm="model.norm",
    ),
    # Gemma 3 normalises each sub-block's output before adding it to the residual stream, so the MLP's
    # write is the output of post_feedforward_layernorm, not of the MLP itself.
    "gemma3_text": ArchitectureMap(
        "gemma3_text", layers="model.layers", attn_out_proj="self_attn.o_proj",
        mlp_out="post_feedforward_layernorm", final_norm="model.norm", attn_post_norm="post_attention_layernorm",
    ),
    "gemma3": ArchitectureMap(
        "gemma3", layers="model.language_model.layers", attn_out_proj="self_attn.o_proj",
        mlp_out="post_feedforward_layernorm", final_norm="model.language_model.norm", text_config_attr="text_config",
        attn_post_norm="post_attention_layernorm",
    ),
}

# HF `config.model_type` -> family. Families that share a layout share a row.
MODEL_TYPES: dict[str, str] = {
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "gpt_neo": "gpt_neo",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "qwen3",
    "gemma3_text": "gemma3_text",
    "gemma3": "gemma3",
}


def register_architecture(arch: ArchitectureMap, model_types=(), *, replace: bool = False) -> None:
    """Make `architecture_for` map each of `model_types` (HF ``config.model_type``; default: the map's
    family name) to `arch`. From outside the package: call this before loading the model, or declare
    an ``emocheck.architectures`` entry point (emocheck.extensions), loaded when the model_type is met."""
    if not isinstance(arch, ArchitectureMap):
        raise ConfigError(f"register_architecture takes an ArchitectureMap, got {type(arch).__name__}")
    model_types = list(model_types) or [arch.family]
    known = FAMILIES.get(arch.family)
    if known is not None and known != arch and not replace:
        raise ConfigError(f"architecture family {arch.family!r} is already registered with another map (pass replace=True)")
    taken = [t for t in model_types if MODEL_TYPES.get(t, arch.family) != arch.family]
    if taken and not replace:
        raise ConfigError(f"model_type(s) {', '.join(taken)} already map to another family (pass replace=True)")
    FAMILIES[arch.family] = arch
    for t in model_types:
        MODEL_TYPES[t] = arch.family


def architecture_for(config) -> ArchitectureMap:
    model_type = getattr(config, "model_type", None)
    family = MODEL_TYPES.get(model_type)
    if family is None and isinstance(model_type, str):
        from emocheck.extensions import ARCHITECTURES_GROUP, load_once

        def register(obj, describe):
            if callable(obj) and not isinstance(obj, ArchitectureMap):
                try:
                    obj = obj()
                except Exception as exc:  # noqa: BLE001 - any failure of a plugin is reported the same way
                    raise ConfigError(f"the {describe} raised {type(exc).__name__}: {exc}") from exc
            if not isinstance(obj, ArchitectureMap):
                raise ConfigError(f"the {describe} gave {type(obj).__name__}, not an "
                                  "emocheck.models.architectures.ArchitectureMap")
            register_architecture(obj, model_types=[model_type], replace=True)

        if load_once(ARCHITECTURES_GROUP, model_type, register):   # an installed plugin maps it
            family = MODEL_TYPES.get(model_type)
    if family is None:
        raise ConfigError(
            f"no architecture mapping for model_type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}. "
            "Register one (emocheck.models.architectures.register_architecture, or an entry point in the group "
            "'emocheck.architectures' named after the model_type; see docs/extending.md)."
        )
    return FAMILIES[family]


def text_config(config, arch: ArchitectureMap):
    return getattr(config, arch.text_config_attr) if arch.text_config_attr else config


def parse_site(site: str, n_layers: int | None = None) -> tuple[int, str]:
    """'blocks.5.hook_resid_post' -> (5, 'hook_resid_post'), with a clear error for bad names/layers."""
    m = _SITE_RE.match(site)
    if not m:
        raise ConfigError(
            f"unknown site {site!r}; sites look like 'blocks.<L>.<kind>' with kind one of {', '.join(SITE_KINDS)}"
        )
    layer, kind = int(m.group(1)), m.group(2)
    check_layer(layer, n_layers)
    return layer, kind


def check_layer(layer: int, n_layers: int | None) -> None:
    if n_layers is not None and not 0 <= layer < n_layers:
        raise ConfigError(f"layer {layer} is out of range: this model has layers 0..{n_layers - 1}")


def site_name(layer: int, kind: str) -> str:
    if kind not in SITE_KINDS:
        raise ConfigError(f"unknown site kind {kind!r}; one of {', '.join(SITE_KINDS)}")
    return f"blocks.{layer}.{kind}"


def resolve(root, dotted: str):
    """Follow a dotted path ('model.layers') through modules or nnsight envoys."""
    obj = root
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def site_module_path(arch: ArchitectureMap, layer: int, kind: str) -> tuple[str, str]:
    """Module path and which side of it ('input' / 'output') a site lives on."""
    block = f"{arch.layers}.{layer}"
    return {
        "hook_resid_pre": (block, "input"),
        "hook_resid_post": (block, "output"),
        "attn.hook_z": (f"{block}.{arch.attn_out_proj}", "input"),
        "hook_mlp_out": (f"{block}.{arch.mlp_out}", "output"),
    }[kind]
