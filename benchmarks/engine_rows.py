"""The rows the engine benchmarks generate: phase-5 ci judged prompts x random directions of the
emotion vectors' scale (an engine's speed and its token agreement do not depend on which direction),
every direction on every prompt, patched at the middle layer."""
from __future__ import annotations

import torch


def engine_rows(model_name: str, n_prompts: int, per_prompt: int, seed: int = 7):
    """(loaded model, texts, {layer: directions}, spec) for n_prompts x per_prompt rows."""
    from emocheck.models.registry import load_model
    from emocheck.patching import experiment as ex
    from emocheck.profiles import get_profile

    profile = get_profile("ci")
    loaded = load_model(model_name)
    judged, _ = ex.split_generation_prompts(profile)
    texts = judged["text"].tolist()[:n_prompts]
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(per_prompt, loaded.d_model, generator=gen)
    dirs = dirs / dirs.norm(dim=1, keepdim=True) * 4.0
    layer = loaded.n_layers // 2
    batch = [t for t in texts for _ in range(per_prompt)]
    spec = ex.base_spec(profile, model_name).replace(layers=(layer,), alpha=1.0)
    return loaded, batch, {layer: torch.cat([dirs] * len(texts))}, spec
