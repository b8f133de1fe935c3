"""First-order attribution patching over every head and MLP (Nanda 2023; EAP, arXiv 2310.10348).

For a target prompt (the run that is patched) and a source activation per component (the mean over
source prompts: neutral means for ablation, emotion means for patch-in):

    attribution_c = (source_c - target_c) . d metric / d activation_c      (at the target run)

the first-order estimate of the metric change when component c alone takes its source value. All
components at once cost one last-token forward (over the cached prefix) and one backward per
prompt; the source means cost one pass per source prompt, shared by every target prompt.

The estimate is exact where the metric is linear in the component (e.g. the final layer's MLP for the
final-layer projection; see tests/test_circuits_attribution.py) and fails where it is not:
attention saturation and cancellation (AtP*, arXiv 2403.00745), and Gemma's post-attention RMSNorm,
which renormalises the sum of a layer's heads. `integrated` (EAP-IG style, arXiv 2403.17806) averages
the gradient over `steps` points on the straight path from the target to the source activations
(all components moved together), at `steps` backward passes per prompt.
"""
from __future__ import annotations

import torch

from emocheck.circuits.components import Activations, LastTokenRun


def _metric(result: dict, metric: str) -> torch.Tensor:
    if metric not in result:
        raise KeyError(f"metric {metric!r} was not computed (give direction= or token_ids=)")
    return result[metric]


def attribute(loaded, text: str, source: Activations, *, metric: str = "projection", direction=None,
              token_ids=None, steps: int = 1, run: LastTokenRun | None = None) -> dict:
    """Attribution of every component on one target prompt.

    Returns {'heads': [L, H], 'mlps': [L], 'metric': clean metric value, 'target': Activations}.
    steps = 1: plain attribution patching; steps > 1: integrated gradients with that many points
    (midpoint rule) between the target (alpha=0) and the source (alpha=1).
    """
    run = run or LastTokenRun(loaded, text)
    g = run.g
    clean = run.run(direction=direction, token_ids=token_ids)
    target = clean["acts"]
    dz = source.z.reshape(1, g.n_layers, g.n_heads, g.head_dim) - target.z
    dm = source.mlp.reshape(1, g.n_layers, g.d_model) - target.mlp
    grad_z = torch.zeros_like(dz)
    grad_m = torch.zeros_like(dm)
    alphas = [0.0] if steps <= 1 else [(k + 0.5) / steps for k in range(steps)]
    for alpha in alphas:
        delta_z = (alpha * dz).clone().requires_grad_(True)
        delta_m = (alpha * dm).clone().requires_grad_(True)
        out = run.run(head_delta=delta_z, mlp_delta=delta_m, direction=direction, token_ids=token_ids, grad=True)
        gz, gm = torch.autograd.grad(_metric(out, metric).sum(), (delta_z, delta_m))
        grad_z += gz.float() / len(alphas)
        grad_m += gm.float() / len(alphas)
    return {"heads": (dz * grad_z).sum(-1)[0], "mlps": (dm * grad_m).sum(-1)[0],
            "metric": float(_metric(clean, metric)[0]), "target": target}


def attribute_metrics(loaded, text: str, source: Activations, metrics: dict, *,
                      run: LastTokenRun | None = None) -> dict:
    """`attribute` (steps = 1) for several metrics at once: {name: scores} for metrics = {name: kwargs}
    (e.g. {'projection': {'direction': u}, 'logprob': {'token_ids': ids}}).

    One backward pass over one row per metric. With zero deltas the gradient pass IS the clean pass,
    so the target activations are read from it; rows do not interact, so row r's gradient is metric
    r's alone. Same numbers as one `attribute` call per metric, for one weight-bound pass instead of
    four (a clean and a gradient pass per metric)."""
    run = run or LastTokenRun(loaded, text)
    g, names = run.g, list(metrics)
    kw = {}
    for name in names:
        kw.update(metrics[name])
    rows = len(names)
    delta_z = torch.zeros(rows, g.n_layers, g.n_heads, g.head_dim, device=loaded.device, requires_grad=True)
    delta_m = torch.zeros(rows, g.n_layers, g.d_model, device=loaded.device, requires_grad=True)
    out = run.run(rows, head_delta=delta_z, mlp_delta=delta_m, grad=True, **kw)
    picked = torch.stack([_metric(out, name)[r] for r, name in enumerate(names)])
    gz, gm = torch.autograd.grad(picked.sum(), (delta_z, delta_m))
    target = Activations(out["acts"].z[:1].detach().float(), out["acts"].mlp[:1].detach().float())
    dz = source.z.reshape(1, g.n_layers, g.n_heads, g.head_dim) - target.z
    dm = source.mlp.reshape(1, g.n_layers, g.d_model) - target.mlp
    return {name: {"heads": (dz[0] * gz[r].float()).sum(-1), "mlps": (dm[0] * gm[r].float()).sum(-1),
                   "metric": float(picked[r].detach()), "target": target}
            for r, name in enumerate(names)}


def flat(scores: dict) -> torch.Tensor:
    """[n_components] in the all_components order (heads first, then MLPs)."""
    return torch.cat([scores["heads"].reshape(-1), scores["mlps"].reshape(-1)])
