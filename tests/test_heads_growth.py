"""Exact head patching effects vs the first-order (direct-path) estimate on a tiny model: identical
for heads of the final layer (there only the direct path exists, families whose write is linear in
z), different once later layers can react; and the table helpers."""
import numpy as np
import pandas as pd
import torch

from emocheck.heads.access import read_heads
from emocheck.heads.growth import exact_arrays, exact_effects, sign
from emocheck.heads.nulls import direct_path_effects, set_masks
from emocheck.testing import tiny_model

TEXTS = ["Huge thanks to you all!", "The van is three stops away.", "I am sorry for the delay.", "Ships Monday."]


def _setup(family="llama", silence_final_mlp=False):
    loaded = tiny_model(family)
    if silence_final_mlp:
        loaded.layer_module(loaded.n_layers - 1).mlp.down_proj.weight.zero_()
    enc = loaded.tokenizer(TEXTS, return_tensors="pt", padding=True, padding_side="right")
    last = enc["attention_mask"].sum(1) - 1
    r = read_heads(loaded, enc["input_ids"], enc["attention_mask"], last)
    u = torch.randn(loaded.d_model, generator=torch.Generator().manual_seed(0))
    u = u / u.norm()
    z_src = torch.stack([r.z[layer] for layer in r.layers], 1)            # [n, L, H, hd]
    z_mean = z_src[:2].mean(0)                                             # "source" prompts: the first two
    direct = torch.stack([r.write_projection(layer, u) for layer in r.layers], 1)   # [n, L, H]
    return loaded, u, z_mean, direct


def test_final_layer_sets_exact_equals_first_order():
    # Only the final layer's MLP sits between a final-layer head and resid_post; silence it, and the
    # direct path is the whole effect, so exact patching must equal the first-order estimate.
    loaded, u, z_mean, direct = _setup(silence_final_mlp=True)
    final = loaded.n_layers - 1
    sets = [((final, 0),), ((final, 1), (final, 3)), ((final, 2),)]
    for kind in ("ablate", "patch_in"):
        ex = exact_effects(loaded, TEXTS, sets, z_mean, u, kind, rows_per_pass=5)
        # replacement projection = write(mean z) . u; linear in z for llama
        from emocheck.heads.access import output_weight
        w = output_weight(loaded, final)
        repl = torch.zeros(direct.shape[1:], dtype=torch.float64)
        repl[final] = torch.einsum("hk,hkd,d->h", z_mean[final], w, u).double()
        fo = sign(kind) * direct_path_effects(direct, repl, set_masks(sets, *direct.shape[1:]))
        np.testing.assert_allclose(ex, fo.T.numpy(), rtol=1e-4, atol=1e-5)


def test_earlier_sets_include_indirect_effects():
    loaded, u, z_mean, direct = _setup()
    sets = [((0, 0), (0, 1))]
    ex = exact_effects(loaded, TEXTS, sets, z_mean, u, "ablate")
    assert np.abs(ex).max() > 0
    # and rows batched with other sets equal a run on their own (no cross-row leakage)
    both = exact_effects(loaded, TEXTS, sets + [((1, 2),)], z_mean, u, "ablate", rows_per_pass=64)
    np.testing.assert_allclose(both[:1], ex, rtol=1e-5, atol=1e-6)


def test_exact_arrays_pivot():
    df = pd.DataFrame({"prompt_id": ["a", "b"] * 3, "set": [0, 0, 1, 1, 2, 2], "effect": [1, 2, 3, 4, 5, 6]})
    t, c = exact_arrays(df)
    assert t.tolist() == [1, 2] and c.tolist() == [[3, 5], [4, 6]]


def test_resample_ablation_is_what_it_says():
    """ablate_resample writes, per prompt, the heads' z of ANOTHER prompt: equal to a full plain-hook
    pass with those values; resampling a prompt from itself changes nothing; zero ablation differs."""
    from emocheck.heads.growth import resample_sources
    from emocheck.heads.reference import patched_residuals_hooks
    from emocheck.heads.specs import HeadPatchSpec

    loaded, u, z_mean, direct = _setup()
    enc = loaded.tokenizer(TEXTS, return_tensors="pt", padding=True, padding_side="right")
    last = enc["attention_mask"].sum(1) - 1
    r = read_heads(loaded, enc["input_ids"], enc["attention_mask"], last, resid=True)
    z = torch.stack([r.z[layer] for layer in r.layers], 1)               # [n, L, H, hd]
    donor = torch.tensor([1, 0, 3, 2])                                    # each prompt takes another's z
    sets = [((0, 1), (1, 2)), ((2, 0),)]
    ex = exact_effects(loaded, TEXTS, sets, z[donor], u, "ablate_resample")
    final = loaded.n_layers - 1
    for i, s in enumerate(sets):
        spec = HeadPatchSpec(s, "resample", "last")
        vals = {layer: z[donor][:, layer] for layer in range(loaded.n_layers)}
        full = patched_residuals_hooks(loaded, enc["input_ids"], enc["attention_mask"], last, spec, vals,
                                       read_layers=[final])[final]
        want = -((full - r.resid_post[final]) @ u).double().numpy()
        np.testing.assert_allclose(ex[i], want, rtol=1e-4, atol=1e-5)
    assert np.abs(ex).max() > 1e-3
    own = exact_effects(loaded, TEXTS, sets, z, u, "ablate_resample")
    np.testing.assert_allclose(own, 0.0, atol=1e-5)
    zero = exact_effects(loaded, TEXTS, sets, None, u, "ablate_zero")
    assert not np.allclose(zero, ex)
    # donors come from the source rows only, keyed by prompt id (order-free, seeded)
    src = np.array([10, 11, 12])
    a = resample_sources(src, ["p1", "p2", "p3", "p4"], seed=1)
    assert set(a) <= set(src) and list(resample_sources(src, ["p3", "p1"], seed=1)) == [a[2], a[0]]
    assert any(list(resample_sources(src, ["p1", "p2", "p3", "p4"], seed=s)) != list(a) for s in range(2, 6))


def test_interventions_run_on_and_reference_held_out_prompts_only():
    """Selection apart from evaluation: the ranking saw the training prompts, so the rows an effect runs
    on AND the rows whose mean it writes are held-out, of the two classes."""
    from emocheck.heads.experiment import ScreenSample
    from emocheck.heads.growth import EXACT_KINDS, intervention_rows

    prompts = pd.DataFrame({"id": [f"p{i}" for i in range(40)],
                            "emotion": ["gratitude", "neutral"] * 20,
                            "split": np.where(np.arange(40) % 5 < 2, "held_out", "train")})
    reps = ScreenSample("m", prompts, None)
    for kind in EXACT_KINDS:
        run, source = intervention_rows(reps, "gratitude", kind)
        assert set(prompts.split.iloc[np.r_[run, source]]) == {"held_out"}
        emotion_rows, neutral_rows = (run, source) if kind.startswith("ablate") else (source, run)
        assert set(prompts.emotion.iloc[emotion_rows]) == {"gratitude"}
        assert set(prompts.emotion.iloc[neutral_rows]) == {"neutral"}
