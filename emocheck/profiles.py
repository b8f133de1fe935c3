"""Profiles: how big a run is and which models it covers.

A profile is chosen with `--emocheck-profile` (default in pytest.ini) or `EMOCHECK_PROFILE`; its
results live under `results/<profile>/`. Sizes grow from `smoke` (seconds, one model) through `ci`
(the default main job: both embedded models, every prompt for representation claims, a modest number
of generations) to `full` (the seed's scale: about 200 prompts per condition).
"""
from __future__ import annotations

import hashlib
import os
import re
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


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")


def safe_part(part) -> str:
    """One path component made from any string (a model name, a hub id, an absolute path):
    separators become '--', other unsafe characters '_', and it never is '', '.' or '..' nor starts
    with '.' (no hidden or parent folders). Distinct inputs that would collide get a short hash."""
    raw = str(part)
    text = raw.strip().replace("\\", "/").strip("/")
    text = "--".join(p for p in text.split("/") if p not in ("", ".", ".."))
    text = _UNSAFE.sub("_", text).lstrip(".")
    if not text:
        text = "_"
    if len(text) > 120:
        text = text[:100]
    if text != raw:
        # 'org/../x' and 'org/x' must not share a folder: tag a rewritten name with its origin's hash.
        text = f"{text}-{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:8]}"
    return text


def results_dir(profile: Profile | str, *parts: str) -> Path:
    """`results/<profile>/<parts...>`, created on demand. Every part is one safe path component
    (safe_part), so the result lies inside the results root and no caller (phase-5
    out_dir, layer profiles, future writers) can write outside `results/` whatever model name it
    passes. Parts that are already safe are kept as they are (existing layouts do not move)."""
    name = profile.name if isinstance(profile, Profile) else str(profile)
    root = results_root()
    path = root.joinpath(safe_part(name), *(safe_part(p) for p in parts))
    # Lexically inside the root whatever the parts were (safe_part leaves no separator or '..'). A
    # symlink a user placed inside results/ (a shared activation cache) is followed on purpose.
    assert root in path.parents, (root, path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"cannot create the results folder {path}: a file of that name is in the way; "
                          "remove it or choose another folder with --emocheck-results DIR") from None
    except PermissionError:
        raise ConfigError(f"cannot create the results folder {path}: permission denied; make it writable or "
                          "choose another folder with --emocheck-results DIR (or EMOCHECK_RESULTS_DIR)") from None
    except NotADirectoryError:
        raise ConfigError(f"cannot create the results folder {path}: part of that path is a file; "
                          "choose another folder with --emocheck-results DIR (or EMOCHECK_RESULTS_DIR)") from None
    return path
