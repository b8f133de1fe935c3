"""Random-head nulls: layer profile kept, seeded, first-order effects match a loop, MC p-values."""
import numpy as np
import pytest
import torch

from emocheck.errors import ConfigError
from emocheck.heads.nulls import (direct_path_effects, layer_counts, monte_carlo_p, overlap, random_head_sets,
                                  set_masks)

CHOSEN = [(5, 1), (5, 3), (7, 0), (2, 2)]


def test_random_sets_keep_the_layer_profile_and_are_seeded():
    sets = random_head_sets(CHOSEN, n_heads=9, k=200, seed=3)
    assert len(sets) == 200
    for s in sets:
        assert layer_counts(s) == layer_counts(CHOSEN)
        assert len(set(s)) == len(s)                      # no head twice
        assert all(0 <= h < 9 for _, h in s)
    assert sets == random_head_sets(CHOSEN, n_heads=9, k=200, seed=3)
    assert sets != random_head_sets(CHOSEN, n_heads=9, k=200, seed=4)
    # uniform within a layer: every head of layer 7 is drawn about 1/9 of the time
    counts = np.bincount([h for s in sets for L, h in s if L == 7], minlength=9)
    assert counts.min() > 5 and counts.max() < 45
    ov = overlap(CHOSEN, sets)
    assert 0 <= ov.min() and ov.max() <= 1


def test_full_layer_gives_the_chosen_set():
    chosen = [(1, h) for h in range(4)]
    assert all(sorted(s) == chosen for s in random_head_sets(chosen, n_heads=4, k=5, seed=0))
    with pytest.raises(ConfigError, match="has 4"):
        random_head_sets([(1, h) for h in range(5)], n_heads=4, k=1, seed=0)


def test_direct_path_effects_match_a_loop():
    gen = torch.Generator().manual_seed(0)
    direct = torch.randn(6, 3, 4, generator=gen)
    repl = torch.randn(3, 4, generator=gen)
    sets = [((0, 1), (2, 3)), ((1, 0),)]
    eff = direct_path_effects(direct, repl, set_masks(sets, 3, 4))
    for i in range(6):
        for j, s in enumerate(sets):
            want = sum(float(repl[L, h] - direct[i, L, h]) for L, h in s)
            assert abs(float(eff[i, j]) - want) < 1e-6   # float32 inputs


def test_monte_carlo_p():
    null = np.arange(99, dtype=float)
    assert monte_carlo_p(1000.0, null) == pytest.approx(1 / 100)
    assert monte_carlo_p(-1.0, null) == pytest.approx(1.0)
    assert monte_carlo_p(49.5, null) == pytest.approx(50 / 100)   # 50..98 are >= 49.5
    assert monte_carlo_p(-1.0, null, "less") == pytest.approx(1 / 100)
