"""Phase 4: cross-model alignment of emotion subspaces, judged against calibrated nulls.

    from emocheck.alignment.run import run_alignment
    result = run_alignment("gemma3-270m", "smollm2-135m", get_profile("ci"))

Modules, one job each: paired (the same prompts from two models), reduce (train-fitted
standardisation / outlier removal / PCA), maps (Procrustes, ridge, CCA), subspaces (emotion
subspaces in reduced coordinates), overlap (principal angles), nulls (random, label-permuted,
shuffled-pairing nulls and the calibrated score), transfer (a mapped direction separates the
target's prompts), layers (layer-pair search on training prompts), kselect (bootstrap over prompts
of the calibrated overlap per k), figures, synthetic (planted ground truth), run (end to end).
"""
