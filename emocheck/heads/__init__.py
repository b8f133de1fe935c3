"""Phase 6: per-head access, screening, head patching and ablation against random-head nulls."""
