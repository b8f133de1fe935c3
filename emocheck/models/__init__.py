"""Phase 0: the model registry and loading (`registry`), one architecture map per family
(`architectures`)."""
