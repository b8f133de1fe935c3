"""Phase 8: emotion circuits over heads and MLPs (attribution, exact validation, discovery, roles)."""
