"""The phase-5 budget: row counts equal what the design builds, and the stated power is the rule's
(checked by simulating the paired min-effect test at alpha / m)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from emocheck.patching import budget
from emocheck.patching.conditions import claim_conditions
from emocheck.patching.experiment import settings
from emocheck.profiles import get_profile as profile_named
from emocheck.stats import compare

from fakes_patching import FakeSubspaces, FakeVectors, fake_null_source


@pytest.mark.parametrize("profile", ["ci", "full"])
def test_rows_are_what_the_design_builds(profile):
    s = settings(profile_named(profile))
    judged = s["judged_prompts"] or 200
    ids = [f"p{i}" for i in range(judged)]
    vecs = FakeVectors()
    conds = claim_conditions(vecs, 1, 2.0, "hook_resid_post", ids, 7, null_source=fake_null_source(),
                             subspaces=FakeSubspaces(vecs), dose_alpha=1.0, secondary=s["secondary"],
                             null_prompts=s.get("null_prompts"), secondary_prompts=s.get("secondary_prompts"))
    rows = sum(judged if c.prompt_ids is None else len(c.prompt_ids) for c in conds)
    assert rows == budget.claim_rows(s, judged)
    pairs = {c["comparison"]: c["pairs"] for c in budget.comparisons(s, judged)}
    null_ids = {c.prompt_ids[0] for c in conds if c.kind == "random"}
    assert len(null_ids) == pairs["vector vs random / label-permuted"]
    assert pairs["vector vs baseline"] == judged
    # the compute plan (emocheck.compute) counts the same rows
    from emocheck.compute import phase5_conditions
    from emocheck.profiles import get_profile

    c = phase5_conditions(get_profile(profile))
    assert c["judged_prompts"] == judged and round(c["claims"] * judged) == rows
    assert round(c["sweep"] * c["tuning_prompts"]) == budget.sweep_rows(s)


@pytest.mark.parametrize("profile", ["ci", "full"])
def test_null_prompt_ids_are_the_prompts_the_random_draws_run_on(profile):
    """Later phases that run their own random controls on phase 5's budget (circuit modulation) take
    `null_prompt_ids`: exactly the prompts phase 5's fresh random draws run on, with the secondary
    (prompting) prompts inside them."""
    import pandas as pd

    from emocheck.patching.experiment import null_prompt_ids, random_seed_base, settings
    from emocheck.profiles import get_profile

    prof = get_profile(profile)
    s = settings(prof)
    n = s["judged_prompts"] or 200
    judged = pd.DataFrame({"id": [f"p{i}" for i in range(n)]})
    vecs = FakeVectors()
    conds = claim_conditions(vecs, 1, 2.0, "hook_resid_post", judged["id"], random_seed_base(prof),
                             null_source=fake_null_source(), subspaces=FakeSubspaces(vecs), dose_alpha=1.0,
                             secondary=s["secondary"], null_prompts=s.get("null_prompts"),
                             secondary_prompts=s.get("secondary_prompts"))
    ids = null_prompt_ids(prof, judged)
    assert set(ids) == {c.prompt_ids[0] for c in conds if c.kind == "random"}
    assert len(ids) == min(n, s.get("null_prompts") or n)
    prompting = {i for c in conds if c.name.startswith("prompt:") for i in (c.prompt_ids or judged["id"])}
    assert prompting and prompting <= set(ids)


def test_stated_power_is_the_rules_power_by_simulation():
    """At the stated detectable d the simulated paired min-effect test at alpha/m rejects 80% of the time;
    at min_d + 0.3 it rejects at the stated power (R = 4000, 3 Monte Carlo SE)."""
    s = {"secondary": ("subspace",), "null_prompts": 60, "secondary_prompts": 30, "fractions": (0.5,),
         "alphas": (1.0,), "tuning_prompts": 4}
    rows = budget.design_power(s, judged=120, family_size=40, min_d=0.2)
    assert [r["pairs"] for r in rows] == [120, 60, 30]
    rng = np.random.default_rng(11)
    R = 4000
    for row in rows:
        n, level = row["pairs"], row["level"]
        assert level == pytest.approx(0.05 / 40)
        for d, want in ((row["detectable_d_80"], 0.8), (0.5, row["power_at_0.5"])):
            diff = rng.normal(d, 1.0, size=(R, n))
            t = diff.mean(1) / (diff.std(1, ddof=1) / math.sqrt(n))
            p = st.nct.sf(t, n - 1, 0.2 * math.sqrt(n))          # the rule's p(d > min_d)
            rate = float(np.mean(p < level))
            assert abs(rate - want) < 3 * math.sqrt(want * (1 - want) / R) + 1e-3, (row["comparison"], d, rate, want)
        # the vectorised p above is the verdict path's own p(d > min_d)
        for k in range(3):
            comp = compare(diff[k], np.zeros(n), paired=True, alternative="greater", min_d=0.2, alpha=level)
            assert comp.p_min_effect == pytest.approx(float(p[k]), rel=1e-6, abs=1e-12)
    # more pairs, more power; a larger family, less
    assert rows[0]["detectable_d_80"] < rows[1]["detectable_d_80"] < rows[2]["detectable_d_80"]
    bigger = budget.design_power(s, judged=120, family_size=400, min_d=0.2)
    assert bigger[0]["detectable_d_80"] > rows[0]["detectable_d_80"]


def test_sweep_rows():
    assert budget.sweep_rows(settings(profile_named("ci"))) == 4 * (1 + 1 * 4 * 4)
    assert budget.sweep_rows({"fractions": (0.25, 0.5, 0.75), "alphas": (1, 2), "tuning_prompts": 10}) == 10 * (1 + 6 * 4)
