"""emocheck: claims about how language models process emotion, written as pytest tests and judged
with real statistics (effect sizes, corrected p-values, power).

The library is usable without pytest (a notebook can call every phase as a plain function):

    from emocheck.profiles import get_profile
    from emocheck.representations.build import build_representations
    reps = build_representations("smollm2-135m", get_profile("ci"))
    reps.vectors.vector("gratitude", layer=10)

Modules, one per pipeline phase: models / architectures (phase 0), dataset and evaluators (1),
extraction and activation_cache (2), vectors and representations (3), separation (Q1 claims),
patching (5), stats, claims, plugin and report (7).
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import emocheck` stays cheap (pytest loads the plugin at start-up) and submodules are
    # imported only when used.
    if name == "claim":
        from emocheck.plugin.claims import claim

        return claim
    if name == "stats":
        import importlib

        return importlib.import_module(".stats", __name__)
    raise AttributeError(f"module 'emocheck' has no attribute {name!r}")
