"""Phases 2-3 and the Q1 analysis: residual-stream extraction (`extraction`), its on-disk cache
(`cache`), emotion vectors and PCA subspaces (`vectors`), building them per model and profile
(`build`), and held-out separation / layer choice (`separation`)."""
