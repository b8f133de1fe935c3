"""Attribution patching and the last-token runner on tiny models: the runner equals full forward
passes with plain hooks, and attribution equals exact patching exactly where the metric is linear."""
import numpy as np
import pytest
import torch

from emocheck.circuits.attribution import attribute, attribute_metrics, flat
from emocheck.circuits.components import (LastTokenRun, all_components, last_token_activations, mean_activations,
                                         mlp_block, mlp_module)
from emocheck.circuits.exact import exact_effects, patched_metric, validate
from emocheck.heads.access import out_proj
from emocheck.testing import tiny_model

FAMILIES = ["llama", "gemma3_text", "gpt2"]
TEXT = "thank you so much!"
SOURCES = ["hello there", "good morning"]


def full_forward(loaded, text, patch=None):
    """Reference: the whole prompt through the model with plain hooks; patch = (component, value), or a
    list of them, replaces each component's activation at the LAST position only. Returns (final
    resid_post, logits)."""
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    handles, read = [], {}
    n_heads, hd = loaded.n_heads, loaded.head_dim
    for comp, value in ([] if patch is None else [patch] if isinstance(patch, tuple) else patch):
        if comp.kind == "head":
            def pre(mod, args, comp=comp, value=value):
                x = args[0].clone()
                x[:, -1, comp.head * hd:(comp.head + 1) * hd] = value
                return (x, *args[1:])
            handles.append(out_proj(loaded, comp.layer).register_forward_pre_hook(pre))
        else:
            def post(mod, args, output, value=value):
                h = (output[0] if isinstance(output, tuple) else output).clone()
                h[:, -1] = value
                return (h, *output[1:]) if isinstance(output, tuple) else h
            handles.append(mlp_module(loaded, comp.layer).register_forward_hook(post))

    def last(mod, args, output):
        read["h"] = (output[0] if isinstance(output, tuple) else output)[:, -1]
    handles.append(loaded.layer_module(loaded.n_layers - 1).register_forward_hook(last))
    try:
        with torch.no_grad():
            logits = loaded.model(input_ids=ids).logits[:, -1]
    finally:
        for h in handles:
            h.remove()
    return read["h"][0].float(), logits[0].float()


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param, n_layers=3, seed=1)


def test_last_token_run_equals_full_forward(model):
    resid, logits = full_forward(model, TEXT)
    out = LastTokenRun(model, TEXT).run(token_ids=[5, 7], direction=torch.ones(model.d_model))
    torch.testing.assert_close(out["resid"][0], resid, atol=1e-4, rtol=1e-4)
    want = torch.logsumexp(torch.log_softmax(logits, -1)[[5, 7]], -1)
    torch.testing.assert_close(out["logprob"][0], want, atol=1e-4, rtol=1e-4)


def test_batched_last_token_activations_equal_one_prompt_at_a_time(model):
    """Right-padded batches (prompts of different lengths, a batch split across chunks) read each prompt
    at its own last token: the same activations as running that prompt alone."""
    texts = ["hi", "thank you so much!", "a much longer prompt than the others, with commas, and more", "ok then"]
    lengths = {len(model.tokenizer(t)["input_ids"]) for t in texts}
    assert len(lengths) > 2                                   # the padding is really exercised
    batched = last_token_activations(model, texts, batch_size=3)
    for i, t in enumerate(texts):
        alone = LastTokenRun(model, t).run()["acts"]
        torch.testing.assert_close(batched.z[i], alone.z[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched.mlp[i], alone.mlp[0], atol=1e-5, rtol=1e-5)
    mean = mean_activations(model, texts)
    torch.testing.assert_close(mean.mlp, batched.mlp.mean(0))


def test_exact_patch_equals_full_forward_patch(model):
    src = mean_activations(model, SOURCES)
    comps = all_components(model)
    u = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    u = u / u.norm()
    picks = [0, model.n_heads + 1, len(comps) - 2, len(comps) - 1]      # heads and MLPs
    eff = exact_effects(model, TEXT, src, picks, direction=u)
    base = full_forward(model, TEXT)[0] @ u
    for i, e in zip(picks, eff):
        c = comps[i]
        value = src.z[c.layer, c.head] if c.kind == "head" else src.mlp[c.layer]
        want = float(full_forward(model, TEXT, (c, value))[0] @ u - base)
        assert e == pytest.approx(want, abs=1e-4)
    # and patching changes something (the check could not pass on an inert patch)
    assert np.abs(eff).max() > 1e-3


def test_rows_that_ablate_mlps_skip_them_and_equal_full_forward_patches(model):
    """Keep-only style rows (many components mean-ablated at once): the runner computes an MLP only for
    the rows that keep it, and every row still equals the plain-hook full forward with all its patches."""
    src = mean_activations(model, SOURCES)
    comps = all_components(model)
    u = torch.randn(model.d_model, generator=torch.Generator().manual_seed(2))
    u = u / u.norm()
    rng = np.random.default_rng(0)
    mask = torch.as_tensor(rng.random((6, len(comps))) < 0.6)
    mask[0] = False                                   # a row that ablates nothing
    mask[1] = True                                    # and one that ablates everything
    block = mlp_block(model, model.n_layers - 1)
    first_linear = next(m for m in block.modules() if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D")
    run, seen = LastTokenRun(model, TEXT), []
    handle = first_linear.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    try:
        got = patched_metric(run, mask, src, direction=u)
    finally:
        handle.remove()
    assert seen == [int((~mask[:, -1]).sum())]        # the last MLP's weights ran on its kept rows only
    assert "forward" not in block.__dict__            # and got its class forward back
    for r in range(mask.shape[0]):
        patches = [(c, src.z[c.layer, c.head] if c.kind == "head" else src.mlp[c.layer])
                   for c, m in zip(comps, mask[r]) if m]
        want = float(full_forward(model, TEXT, patches)[0] @ u)
        assert got[r] == pytest.approx(want, abs=1e-4)
    assert np.ptp(got) > 1e-3                         # the rows differ: the check could not pass on inert masks


def test_an_existing_forward_wrapper_is_kept_around_the_row_skip(model):
    """accelerate's device hooks replace module.forward on the instance; the skip wraps theirs and puts it back."""
    src = mean_activations(model, SOURCES)
    block = mlp_block(model, 0)
    calls = []
    cls_forward = type(block).forward

    def wrapper(x, *a, **k):
        calls.append(x.shape[0])
        return cls_forward(block, x, *a, **k)
    block.forward = wrapper
    try:
        mask = torch.zeros(3, len(all_components(model)), dtype=torch.bool)
        mask[1:, model.n_layers * model.n_heads] = True          # rows 1, 2 ablate layer 0's MLP
        patched_metric(LastTokenRun(model, TEXT), mask, src, direction=torch.ones(model.d_model))
        assert calls[-1] == 1 and block.forward is wrapper
    finally:
        del block.forward


def test_attribution_of_several_metrics_in_one_pass_equals_one_call_per_metric(model):
    src = mean_activations(model, SOURCES)
    u = torch.randn(model.d_model, generator=torch.Generator().manual_seed(3))
    metrics = {"projection": {"direction": u}, "logprob": {"token_ids": [5, 7]}}
    run = LastTokenRun(model, TEXT)
    together = attribute_metrics(model, TEXT, src, metrics, run=run)
    for name, kw in metrics.items():
        alone = attribute(model, TEXT, src, metric=name, run=run, **kw)
        torch.testing.assert_close(flat(together[name]), flat(alone), atol=1e-5, rtol=1e-4)
        assert together[name]["metric"] == pytest.approx(alone["metric"], abs=1e-5)
        torch.testing.assert_close(together[name]["target"].z, alone["target"].z)
    # the two metrics' scores are different things (a row mix-up would make them equal)
    assert not torch.allclose(flat(together["projection"]), flat(together["logprob"]))


def test_attribution_equals_exact_for_the_final_mlp(model):
    """resid_post of the final layer is linear in the final MLP's output: first order is exact."""
    src = mean_activations(model, SOURCES)
    u = torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))
    a = flat(attribute(model, TEXT, src, direction=u)).numpy()
    e = exact_effects(model, TEXT, src, range(len(a)), direction=u)
    assert abs(e[-1]) > 1e-5
    assert a[-1] == pytest.approx(e[-1], rel=1e-3, abs=1e-8)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_attribution_equals_exact_when_the_model_is_linear_in_every_head(family):
    """Planted linearity: one layer with its MLP silenced, so the final resid_post is
    embedding + o_proj(z) and every head enters linearly; attribution must equal exact patching."""
    m = tiny_model(family, n_layers=1, seed=2)
    mlp = mlp_module(m, 0)
    for p in mlp.parameters():
        p.data.zero_()
    src = mean_activations(m, SOURCES)
    u = torch.randn(m.d_model, generator=torch.Generator().manual_seed(3))
    a = flat(attribute(m, TEXT, src, direction=u)).numpy()
    e = exact_effects(m, TEXT, src, range(len(a)), direction=u)
    assert np.abs(e[: m.n_heads]).max() > 1e-5
    np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-8)


def test_integrated_gradients_add_up_to_the_path_change():
    """Completeness of the path integral: sum of IG attributions = metric(delta at alpha=1) - metric(0)."""
    m = tiny_model("llama", n_layers=3, seed=4)
    src = mean_activations(m, SOURCES)
    u = torch.randn(m.d_model, generator=torch.Generator().manual_seed(5))
    run = LastTokenRun(m, TEXT)
    ig = attribute(m, TEXT, src, direction=u, steps=48, run=run)
    g = run.g
    t = ig["target"]
    full = run.run(head_delta=src.z[None] - t.z, mlp_delta=src.mlp[None] - t.mlp, direction=u)["projection"][0]
    total = float(flat(ig).sum())
    assert total == pytest.approx(float(full) - ig["metric"], rel=2e-2, abs=1e-4)
    plain = attribute(m, TEXT, src, direction=u, steps=1, run=run)
    assert not torch.allclose(flat(plain), flat(ig))          # the two estimates are different things
    assert g.n_layers == 3


def test_validate_reports_agreement_and_worst_rows():
    import pandas as pd
    rng = np.random.default_rng(0)
    ex = rng.normal(size=60)
    df = pd.DataFrame({"component": np.repeat(np.arange(20), 3), "kind": ["head"] * 45 + ["mlp"] * 15,
                       "exact": ex, "attribution": ex + rng.normal(scale=0.1, size=60)})
    df.loc[7, "attribution"] = 10.0
    v = validate(df, worst=3)
    assert v["all"]["spearman"] > 0.9
    assert v["worst"][0]["attribution"] == 10.0
    assert set(v) >= {"head", "mlp", "per_component_mean"}
