"""emocheck.compute: FLOPs per token, workload counts of the phase-5 design, memory/time plans."""
from __future__ import annotations

import pytest
import torch

from emocheck.compute import (MEDIUM_MODELS, ModelShape, Workload, gemm_rate, medium_model_plans, model_plan,
                              phase5_conditions, phase5_workload)
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model


def test_shape_from_config_counts_parameters_of_a_real_module():
    m = tiny_model("llama", n_layers=3)
    shape = ModelShape.from_config(m.model.config)
    blocks = sum(p.numel() for n, p in m.model.named_parameters()
                 if ".layers." in n and n.endswith("proj.weight"))
    assert shape.block_params() == blocks
    assert shape.head_params() == m.model.lm_head.weight.numel()
    assert shape.flops_per_token(True) == 2 * (blocks + shape.head_params())
    assert shape.flops_per_token(False) == 2 * blocks


def test_medium_models_match_published_sizes():
    # Published totals: Llama 3 8B 8.03B, Qwen3 8B 8.19B, Gemma 3 12B text tower ~11.8B parameters.
    sizes = {n: s.weight_bytes(1) / 1e9 for n, s in MEDIUM_MODELS.items()}
    assert sizes["llama3-8b"] == pytest.approx(8.03, abs=0.02)
    assert sizes["qwen3-8b"] == pytest.approx(8.19, abs=0.02)
    assert sizes["gemma3-12b"] == pytest.approx(11.77, abs=0.1)


def test_phase5_counts_follow_the_experiment_design():
    from emocheck.patching.conditions import claim_conditions

    ci = get_profile("ci")
    c = phase5_conditions(ci)
    # ci: one sweep layer x 4 alphas; secondary subspace (+ its null), prompt, dose-matched on half the prompts
    assert c == {"sweep": 1 + 1 * 4 * 4, "claims": 1 + 3 * (3 + 1.0 + 0.5 + 0.5), "tuning_prompts": 4,
                 "judged_prompts": 20}
    w = phase5_workload(ci, prompt_tokens=31)
    assert w.rows == 17 * 4 + 16 * 20 and w.prompts == 24
    assert w.prefix_tokens == 24 * 30 and w.decode_tokens == w.scoring_tokens == w.rows * 30
    full = phase5_workload(get_profile("full"))
    assert full.rows > w.rows

    # The count must be what the design really builds: run claim_conditions on fake vectors and count rows.
    class Vectors:
        def vector(self, emotion, layer, kind="vs_neutral", site="hook_resid_post"):
            g = torch.Generator().manual_seed(len(emotion) + 7 * layer)
            return torch.randn(16, generator=g, dtype=torch.float64)

    class Subspaces:
        def components(self, emotion, layer, k, site="hook_resid_post"):
            return torch.linalg.qr(torch.randn(16, k, dtype=torch.float64))[0].T

    ids = [f"p{i}" for i in range(20)]
    conds = claim_conditions(Vectors(), 1, 2.0, "hook_resid_post", ids, 3,
                             null_source=lambda e, layer, site: (torch.randn(30, 16), torch.randn(30, 16)),
                             subspaces=Subspaces(), dose_alpha=1.0, secondary=("subspace", "prompt", "dose_matched"))
    rows = sum(len(ids) if cond.prompt_ids is None else len(cond.prompt_ids) for cond in conds)
    assert rows == c["claims"] * len(ids)


def test_floor_and_plan_scale_as_they_should():
    shape = MEDIUM_MODELS["llama3-8b"]
    w = Workload(prompts=10, rows=100, prefix_tokens=300, decode_tokens=3000, scoring_tokens=3000)
    assert w.floor_seconds(shape, 2e11) == pytest.approx(2 * w.floor_seconds(shape, 4e11))
    ci, full = get_profile("ci"), get_profile("full")
    plans = {p["model"]: p for p in medium_model_plans(full)}
    assert set(plans) == set(MEDIUM_MODELS)
    g = plans["gemma3-12b"]
    assert g["weights_gb"] == pytest.approx(11.77 * 2, abs=0.3)
    assert g["gpus_needed"] == 1
    assert model_plan(_cfg(shape), full, gpu_memory=16e9)["gpus_needed"] >= 2
    small = model_plan(_cfg(shape), ci)
    assert small["phase5_minutes"] < plans["llama3-8b"]["phase5_minutes"]


def _cfg(shape):
    from emocheck.compute import _ShapeConfig

    return _ShapeConfig(shape)


def test_gemm_rate_is_positive_and_finite():
    rate = gemm_rate(64, 128, rows=16, seconds=0.05)
    assert 1e6 < rate < 1e15
