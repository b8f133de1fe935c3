"""The judged design: which direction on which prompt, fresh null draws per prompt, norms, seeds."""
import torch
import pytest

from emocheck.patching.conditions import EMOTIONS, PROMPT_PREFIXES, claim_conditions, half_of, sweep_conditions

from fakes_patching import FakeSubspaces, FakeVectors, fake_null_source

IDS = [f"g{i}" for i in range(10)]


def _design(**kw):
    vecs = FakeVectors()
    return vecs, claim_conditions(vecs, layer=1, alpha=2.0, site="hook_resid_post", prompt_ids=IDS, seed=5,
                                  null_source=fake_null_source(), subspaces=FakeSubspaces(vecs), **kw)


def test_design_rows_and_norms():
    vecs, conds = _design(dose_alpha=0.5)
    half = half_of(IDS, 5)
    assert len(half) == 5 and set(half) < set(IDS)
    by = {}
    for c in conds:
        by.setdefault(c.name, []).append(c)
    assert float(by["baseline"][0].vector.abs().sum()) == 0 and by["baseline"][0].prompt_ids is None
    for e in EMOTIONS:
        n = float(vecs.vector(e, 1).norm())
        assert torch.allclose(by[e][0].vector, 2.0 * vecs.vector(e, 1)) and by[e][0].prompt_ids is None
        assert torch.allclose(by[f"neg:{e}"][0].vector, -by[e][0].vector) and by[f"neg:{e}"][0].prompt_ids == half
        for name, count in ((f"random:{e}", 10), (f"permuted:{e}", 10), (f"randsub:{e}", 5), (f"random_dm:{e}", 5)):
            draws = by[name]
            assert len(draws) == count and all(len(c.prompt_ids) == 1 for c in draws)
            assert len({c.prompt_ids[0] for c in draws}) == count and len({c.seed for c in draws}) == count
            scale = 0.5 if name.startswith("random_dm") else 2.0
            for c in draws:
                assert c.vector.norm().item() == pytest.approx(scale * n)
        assert {c.prompt_ids[0] for c in by[f"randsub:{e}"]} == set(half)
        for name in (f"specific:{e}", f"subspace:{e}"):
            assert by[name][0].vector.norm().item() == pytest.approx(2.0 * n)
        p = by[f"prompt:{e}"][0]
        assert p.prefix == PROMPT_PREFIXES[e] and float(p.vector.abs().sum()) == 0 and p.prompt_ids == half
    # null draws of different emotions and kinds never share a seed
    seeds = [c.seed for c in conds if c.seed is not None]
    assert len(seeds) == len(set(seeds))


def test_design_is_deterministic_and_dose_match_optional():
    _, a = _design()
    _, b = _design()
    assert [c.name for c in a] == [c.name for c in b]
    assert all(torch.equal(x.vector, y.vector) for x, y in zip(a, b))
    assert not any(c.name.startswith("random_dm") for c in a)
    _, same = _design(dose_alpha=2.0)                    # equal to alpha: the plain random control suffices
    assert not any(c.name.startswith("random_dm") for c in same)


def test_sweep_conditions_fresh_random_per_prompt():
    vecs = FakeVectors()
    conds = sweep_conditions(vecs, [1, 2], [1.0, 3.0], "hook_resid_post", seed=9, prompt_ids=["a", "b", "c"])
    rand = [c for c in conds if c.kind == "random"]
    assert len(rand) == 2 * 2 * 3 and {c.prompt_ids for c in rand} == {("a",), ("b",), ("c",)}
    assert len([c for c in conds if c.kind == "emotion"]) == 2 * 2 * 3


def test_budget_subsets_keep_the_default_draws_and_nest():
    """null_prompts / secondary_prompts (a profile's budget): defaults are the design unchanged; a subset
    gets exactly the draws the full design gives those prompts; secondary prompts lie inside the null ones."""
    _, full = _design(dose_alpha=0.5)
    _, same = _design(dose_alpha=0.5, null_prompts=len(IDS), secondary_prompts=None)
    assert [(c.name, c.prompt_ids, c.seed) for c in full] == [(c.name, c.prompt_ids, c.seed) for c in same]
    assert all(torch.equal(a.vector, b.vector) for a, b in zip(full, same))
    _, small = _design(dose_alpha=0.5, null_prompts=6, secondary_prompts=3)
    by_full = {(c.name, c.prompt_ids): c for c in full}
    nulls = {c.prompt_ids[0] for c in small if c.kind in ("random", "permuted")}
    secondary = {p for c in small if c.kind in ("negated", "prompt", "randsub", "random_dm", "subspace", "specific")
                 for p in c.prompt_ids}
    assert len(nulls) == 6 and len(secondary) == 3 and secondary <= nulls
    for c in small:
        if c.kind in ("random", "permuted"):
            ref = by_full[(c.name, c.prompt_ids)]
            assert c.seed == ref.seed and torch.equal(c.vector, ref.vector)
        if c.kind in ("baseline", "emotion"):
            assert c.prompt_ids is None                 # the vector itself runs on every judged prompt
    rows = sum(len(IDS) if c.prompt_ids is None else len(c.prompt_ids) for c in small)
    assert rows == len(IDS) * (1 + 3) + 3 * (2 * 6 + 6 * 3)   # baseline + vectors; nulls; 6 secondary rows x 3
