"""The phase-5 design of a profile as a time budget: rows to generate, and the power each comparison
keeps under the verdict rule.

A profile's `patching` sizes (emocheck.profiles.PatchingSizes) fix the judged prompts n (the emotion vectors and
the baseline run on all of them), the null prompts (random and label-permuted draws, fresh per prompt,
default all n) and the secondary prompts (negated / specific / subspace + random subspaces / prompting /
dose-matched random, default half), nested in one seeded hash order (emocheck.patching.conditions).
Every claim is a paired comparison on the prompts BOTH of its conditions ran on, so its n is the
smaller of the two sets:

===========================================  ====================
comparison                                   pairs
===========================================  ====================
vector vs baseline                           n
vector vs random / label-permuted            null prompts
vector vs dose-matched random                secondary prompts (null prompts when that alpha is the treated one)
specific vs random, subspace vs random       secondary prompts
subspace, negated, prompting comparisons     secondary prompts
===========================================  ====================

The power statement is the rule's own: the min-effect test (H0: d <= min_d, noncentral t on the n - 1
df of the paired differences; ``emocheck.stats.power.power_min_effect``) at the planning level
alpha / m, m = the declared family size (Bonferroni, and Holm's first step: conservative for Holm).
``design_power`` gives, per comparison, the smallest true d with 80% power and the power at
d = min_d + 0.2 / 0.3 / 0.5. tests/test_patching_budget.py checks those numbers by simulating the rule.
"""
from __future__ import annotations

import math

from emocheck.stats.power import detectable_d, power_min_effect

EXCESS = (0.2, 0.3, 0.5)


def prompt_counts(settings: dict, judged: int) -> dict:
    """{'judged', 'null', 'secondary'}: prompts each part of the claim design runs on."""
    null = min(judged, settings.get("null_prompts") or judged)
    sec = settings.get("secondary_prompts")
    sec = (judged + 1) // 2 if sec is None else int(sec)
    return {"judged": judged, "null": null, "secondary": min(sec, null)}


def comparisons(settings: dict, judged: int) -> list[dict]:
    """The claim comparisons the design runs and their pairs (module table)."""
    c = prompt_counts(settings, judged)
    sec = set(settings.get("secondary", ()))
    out = [{"comparison": "vector vs baseline", "pairs": c["judged"]},
           {"comparison": "vector vs random / label-permuted", "pairs": c["null"]}]
    if "dose_matched" in sec:
        out.append({"comparison": "vector vs dose-matched random", "pairs": c["secondary"]})
    if sec & {"specific", "subspace", "negated", "prompt"}:
        out.append({"comparison": "secondary (" + ", ".join(sorted(sec - {"dose_matched"})) + ")",
                    "pairs": c["secondary"]})
    return out


def claim_rows(settings: dict, judged: int, n_emotions: int = 3) -> int:
    """Generated rows of the judged claim design per model (baseline, vectors, nulls, secondary)."""
    c = prompt_counts(settings, judged)
    per_secondary = {"negated": 1, "specific": 1, "subspace": 2, "prompt": 1, "dose_matched": 1}
    sec_rows = sum(per_secondary.get(s, 0) for s in settings.get("secondary", ()))
    return c["judged"] * (1 + n_emotions) + n_emotions * (2 * c["null"] + sec_rows * c["secondary"])


def sweep_rows(settings: dict, n_emotions: int = 3) -> int:
    """Generated rows of the tuning sweep per model."""
    cells = len(settings["fractions"]) * len(settings["alphas"])
    return settings["tuning_prompts"] * (1 + cells * (n_emotions + 1))


def design_power(settings: dict, judged: int, family_size: int, *, min_d: float = 0.2, alpha: float = 0.05,
                 power: float = 0.8) -> list[dict]:
    """Per comparison: pairs, planning level alpha / m, the smallest true d with `power` under the
    rule, and the power at min_d + each of EXCESS."""
    level = alpha / max(1, int(family_size))
    rows = []
    for comp in comparisons(settings, judged):
        n = int(comp["pairs"])
        d80 = detectable_d(float(n - 1), math.sqrt(n), min_d=min_d, power=power, alpha=level)
        row = {**comp, "family_size": int(family_size), "level": level, "min_d": min_d, f"detectable_d_{int(power * 100)}": d80}
        for e in EXCESS:
            row[f"power_at_{min_d + e:g}"] = power_min_effect(min_d + e, n, min_d=min_d, paired=True, alpha=level)
        rows.append(row)
    return rows
