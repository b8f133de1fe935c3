"""Profiles: how big a run is and which models it covers.

A profile is chosen with `--emocheck-profile` (default in pytest.ini) or `EMOCHECK_PROFILE`; its
results live under `results/<profile>/`. Sizes grow from `smoke` (seconds, one model) through `ci`
(the default main job: both embedded models, every prompt for representation claims, a modest number
of generations) to `full` (the seed's scale: about 200 prompts per condition).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

EMBEDDED_MODELS = ("gemma3-270m", "smollm2-135m")


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[str, ...]
    # Representation claims (phases 2-3): prompts per emotion taken from data/emotion_prompts.csv
    # (None = all), and the fraction held out for judging layers chosen on the rest.
    prompts_per_emotion: int | None
    held_out_fraction: float = 0.3
    # Causal claims (phase 5): neutral generation prompts per condition, random-direction draws.
    generation_prompts: int = 40
    random_directions: int = 3
    new_tokens: int = 30
    batch_size: int = 16
    bootstrap_resamples: int = 2000
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["models"] = list(self.models)
        return d


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        models=("smollm2-135m",),
        prompts_per_emotion=40,
        generation_prompts=8,
        random_directions=2,
        new_tokens=16,
        bootstrap_resamples=500,
    ),
    "ci": Profile(
        name="ci",
        models=EMBEDDED_MODELS,
        prompts_per_emotion=None,
        generation_prompts=48,
        random_directions=3,
    ),
    "full": Profile(
        name="full",
        models=EMBEDDED_MODELS,
        prompts_per_emotion=None,
        generation_prompts=200,
        random_directions=5,
        bootstrap_resamples=10000,
    ),
}


def get_profile(name: str | None = None, models: list[str] | None = None) -> Profile:
    """Return the named profile (default: $EMOCHECK_PROFILE or 'ci'), optionally with other models."""
    name = name or os.environ.get("EMOCHECK_PROFILE") or "ci"
    if name not in PROFILES:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            "(--emocheck-profile NAME or EMOCHECK_PROFILE=NAME)"
        )
    profile = PROFILES[name]
    if models:
        profile = replace(profile, models=tuple(models))
    return profile


def results_root() -> Path:
    """Folder that holds `results/<profile>/...`: $EMOCHECK_RESULTS_DIR, else ./results."""
    return Path(os.environ.get("EMOCHECK_RESULTS_DIR") or (Path.cwd() / "results")).resolve()


def results_dir(profile: Profile | str, *parts: str) -> Path:
    """`results/<profile>/<parts...>`, created on demand."""
    name = profile.name if isinstance(profile, Profile) else str(profile)
    path = results_root().joinpath(name, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
