"""Phase 4: cross-model alignment of emotion subspaces, judged against calibrated nulls.

    from emocheck.alignment.run import run_alignment
    result = run_alignment("gemma3-270m", "smollm2-135m", get_profile("ci"))

Modules, one job each: paired (the same prompts from two models), reduce (train-fitted
standardisation / outlier removal / PCA), maps (Procrustes, ridge, CCA), subspaces (emotion
subspaces in reduced coordinates), overlap (principal angles), nulls (random, label-permuted,
shuffled-pairing and random-group nulls, the calibrated score, and which claim uses which),
transfer (a mapped direction separates the target's prompts), layers (layer-pair search on training
prompts), kselect (bootstrap over prompts of the calibrated overlap per k, the best k tested on
prompts apart from its selection), figures, synthetic (planted ground truth, shared content),
calibration (how often each overlap claim is supported on simulated pairs), run (end to end).
"""
