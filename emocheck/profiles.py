"""Profiles: how big a run is and which models it covers.

A profile is chosen with `--emocheck-profile` (default in pytest.ini) or `EMOCHECK_PROFILE`; its
results live under `results/<profile>/`. Sizes grow from `smoke` (seconds, one model; `quickstart` is
its sibling for a first run: a few real Q1 and Q3 claims, see QUICKSTART_CLAIMS) through `ci`
(the default main job: both embedded models, every prompt for representation claims, a modest number
of generations) to `full` (the seed's scale: about 200 prompts per condition).

Users define their own profiles as configuration, either in `pyproject.toml`

    [tool.emocheck.profiles.mine]
    base = "ci"                        # optional: start from a built-in (or earlier) profile
    models = ["smollm2-135m"]
    prompts_per_emotion = 60
    dataset = "data/my_prompts.jsonl"  # relative to the file that defines it

or in pytest.ini, one profile per line of the `emocheck_profiles` key:

    emocheck_profiles =
        mine: base=ci models=smollm2-135m prompts_per_emotion=60 seed=1

An unknown key, a bad value or an unknown base is a ConfigError naming the profile and the key.
`get_profile(name)` finds built-ins, registered profiles (the pytest plugin registers those it read)
and, for notebooks, the profiles of ./pyproject.toml.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import ConfigError

EMBEDDED_MODELS = ("gemma3-270m", "smollm2-135m")
#: The secondary conditions of the phase-5 design (emocheck.patching.conditions), in design order.
SECONDARY_CONDITIONS = ("negated", "specific", "subspace", "prompt", "dose_matched")


@dataclass(frozen=True)
class PatchingSizes:
    """Phase 5 (residual patching; emocheck.patching.experiment). The defaults are ci's.

    judged_prompts: judged generation prompts (None = the profile's generation_prompts); tuning_prompts:
    the disjoint prompts of the layer / alpha sweep; fractions: sweep layers as fractions of depth;
    alphas: the sweep's multiples of ||v_e||; rows_per_batch: rows of one batched generation;
    secondary: the secondary conditions run; null_prompts: judged prompts the random and label-permuted
    draws run on (None = all); secondary_prompts: prompts of the secondary conditions (None = half)."""

    judged_prompts: int | None = 20
    tuning_prompts: int = 4
    fractions: tuple[float, ...] = (0.5,)
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    rows_per_batch: int = 192
    secondary: tuple[str, ...] = ("subspace", "prompt", "dose_matched")
    null_prompts: int | None = None
    secondary_prompts: int | None = None


@dataclass(frozen=True)
class HeadSizes:
    """Phase 6 (attention heads; emocheck.heads). The defaults are ci's.

    screen_prompts: prompts screened per class (None = all); exact_prompts: prompts of an exact
    patching table; exact_sets: random head sets of the claims (n = 8); growth_sets: random sets of the
    other n of the growth curves; direct_sets: random sets of the first-order growth null;
    generation_prompts: judged generation prompts of the head-patching generation claims (the first n
    of phase 5's judged order; None = phase 5's judged prompts)."""

    screen_prompts: int | None = 48
    exact_prompts: int = 12
    exact_sets: int = 30
    growth_sets: int = 10
    direct_sets: int = 1000
    generation_prompts: int | None = 40


@dataclass(frozen=True)
class CircuitSizes:
    """Phase 8 (circuits; emocheck.circuits.experiment). The defaults are ci's.

    attr_prompts: training emotion prompts of the attribution; neutral_prompts: training neutral
    prompts of the mean-ablation source; exact_prompts: prompts of the exact-patching validation;
    held_out: held-out emotion prompts the circuit is judged on; random: random circuits of the null."""

    attr_prompts: int = 12
    neutral_prompts: int = 24
    exact_prompts: int = 2
    held_out: int = 12
    random: int = 199


#: profile key -> the sizes class of that phase
PHASE_SIZES = {"patching": PatchingSizes, "heads": HeadSizes, "circuits": CircuitSizes}


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
    # Emotion prompt dataset (CSV/JSONL path) and generation prompts file; None = $EMOCHECK_DATASET /
    # $EMOCHECK_GENERATION_PROMPTS, else the project's data/ files.
    dataset: str | None = None
    generation_prompts_file: str | None = None
    # Per-phase sizes (a user profile inherits its base's and may override any one of them).
    patching: PatchingSizes = field(default_factory=PatchingSizes)
    heads: HeadSizes = field(default_factory=HeadSizes)
    circuits: CircuitSizes = field(default_factory=CircuitSizes)
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
        patching=PatchingSizes(judged_prompts=None, tuning_prompts=4, fractions=(0.5,), alphas=(0.5, 2.0),
                               rows_per_batch=64, secondary=SECONDARY_CONDITIONS),
        # smoke has 40 prompts per emotion: screen all
        heads=HeadSizes(screen_prompts=None, exact_prompts=4, exact_sets=4, growth_sets=4, direct_sets=200,
                        generation_prompts=8),
        circuits=CircuitSizes(attr_prompts=6, neutral_prompts=12, exact_prompts=1, held_out=6, random=39),
    ),
    # `emocheck quickstart`: a first verdict in a few minutes on a 2-core CPU (QUICKSTART_CLAIMS below):
    # SmolLM2 only, 24 prompts per emotion for the representation claims, 8 judged generation prompts and
    # a 2-alpha sweep on 4 tuning prompts for the steering claims, no secondary conditions. Its numbers
    # are real but small-sample: most steering claims come out inconclusive at this n, and the report
    # says how many prompts they would need.
    "quickstart": Profile(
        name="quickstart",
        models=("smollm2-135m",),
        prompts_per_emotion=24,
        generation_prompts=8,
        random_directions=2,
        new_tokens=16,
        bootstrap_resamples=500,
        patching=PatchingSizes(judged_prompts=None, tuning_prompts=4, fractions=(0.5,), alphas=(0.5, 2.0),
                               rows_per_batch=64, secondary=()),
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
        patching=PatchingSizes(judged_prompts=None, tuning_prompts=8, fractions=(0.25, 0.5, 0.75),
                               alphas=(0.5, 1.0, 2.0, 4.0), rows_per_batch=192, secondary=SECONDARY_CONDITIONS,
                               null_prompts=100, secondary_prompts=40),
        heads=HeadSizes(screen_prompts=None, exact_prompts=40, exact_sets=40, growth_sets=10, direct_sets=2000,
                        generation_prompts=100),
        circuits=CircuitSizes(attr_prompts=64, neutral_prompts=147, exact_prompts=8, held_out=63, random=199),
    ),
}


BUILTIN_PROFILES = tuple(PROFILES)

#: The claims `emocheck quickstart` runs (pytest node ids, every parametrisation of each test): Q1, is the
#: emotion written into the residual stream (each emotion's direction separates its prompts from neutral
#: ones on held-out prompts); Q3, does adding that direction while generating change the text (the
#: evaluators' scores against random directions of the same norm and against the unpatched model) and
#: does it stay fluent. They are judged like any claim: their families are the ones their modules
#: declare for the profile, so claims left out count as p = 1 in the correction.
QUICKSTART_CLAIMS = (
    "hypotheses/test_q1_write_in.py::test_emotion_vector_separates_from_neutral",
    "hypotheses/test_q3_residual_patching.py::test_vs_random_raises",
    "hypotheses/test_q3_residual_patching.py::test_vs_random_lowers",
    "hypotheses/test_q3_residual_patching.py::test_vs_baseline_raises",
    "hypotheses/test_q3_residual_patching.py::test_vs_baseline_lowers",
    "hypotheses/test_q3_residual_patching.py::test_fluency_noninferior",
)
_USER_PROFILES: dict[str, Profile] = {}
_CONFIGURABLE = {f.name: f for f in fields(Profile) if f.name not in ("name", "extra", *PHASE_SIZES)}
#: sizes that may be None (written "none" or "all" in a configuration)
_OPTIONAL_SIZES = {("patching", "judged_prompts"), ("patching", "null_prompts"), ("patching", "secondary_prompts"),
                   ("heads", "screen_prompts"), ("heads", "generation_prompts")}
_INTS = ("prompts_per_emotion", "generation_prompts", "random_directions", "new_tokens", "batch_size",
         "bootstrap_resamples", "seed")


def _coerce(profile: str, key: str, value, where: str):
    def bad(why: str):
        return ConfigError(f"{where}: profile {profile!r} key {key!r} = {value!r}: {why}")

    if key == "models":
        items = [m.strip() for m in value.split(",")] if isinstance(value, str) else list(value)
        if not items or not all(isinstance(m, str) and m for m in items):
            raise bad("give one or more model names")
        return tuple(items)
    if key in _INTS:
        if key == "prompts_per_emotion" and (value is None or str(value).lower() in ("none", "all")):
            return None
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (isinstance(value, float) and value != number):
            raise bad("must be a whole number")
        if number < (0 if key == "seed" else 1):
            raise bad("must be positive" if key != "seed" else "must be >= 0")
        return number
    if key == "held_out_fraction":
        try:
            frac = float(value)
        except (TypeError, ValueError):
            raise bad("must be a number") from None
        if not 0 < frac < 1:
            raise bad("must lie between 0 and 1")
        return frac
    if key in ("dataset", "generation_prompts_file"):
        if not isinstance(value, str) or not value:
            raise bad("must be a file path")
        return value
    raise bad("not configurable")


def _items(value) -> list:
    """A list from a TOML list, a comma-separated string or one value."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _coerce_size(profile: str, phase: str, key: str, value, where: str):
    """One size of one phase, checked like the profile's own keys."""
    def bad(why: str):
        return ConfigError(f"{where}: profile {profile!r} key '{phase}.{key}' = {value!r}: {why}")

    names = [f.name for f in fields(PHASE_SIZES[phase])]
    if key not in names:
        raise bad(f"not a size of phase {phase!r}; one of {', '.join(names)}")
    if key in ("fractions", "alphas"):
        try:
            numbers = tuple(float(v) for v in _items(value) if not isinstance(v, bool))
        except (TypeError, ValueError):
            numbers = ()
        if not numbers or len(numbers) != len(_items(value)):
            raise bad("give one or more positive numbers" if key == "alphas" else "give fractions between 0 and 1")
        if key == "fractions" and not all(0 < f < 1 for f in numbers):
            raise bad("give fractions between 0 and 1")
        if key == "alphas" and not all(a > 0 for a in numbers):
            raise bad("give one or more positive numbers")
        return numbers
    if key == "secondary":
        items = _items(value)
        unknown = [v for v in items if v not in SECONDARY_CONDITIONS]
        if unknown or not all(isinstance(v, str) for v in items):
            raise bad(f"unknown condition(s) {', '.join(map(repr, unknown))}; one of {', '.join(SECONDARY_CONDITIONS)}")
        return tuple(items)
    if (phase, key) in _OPTIONAL_SIZES and (value is None or str(value).lower() in ("none", "all")):
        return None
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or (isinstance(value, float) and value != number):
        raise bad("must be a whole number" + (" (or 'all')" if (phase, key) in _OPTIONAL_SIZES else ""))
    if number < 1:
        raise bad("must be positive")
    return number


def _phase_tables(profile: str, settings: dict, where: str) -> tuple[dict, dict]:
    """Split a profile's settings into its own keys and per-phase size tables: a phase's sizes come as
    a sub-table (TOML `patching.judged_prompts = 50` or `[tool.emocheck.profiles.NAME.patching]`) or as
    dotted keys (pytest.ini `patching.judged_prompts=50`)."""
    own, phases = {}, {}
    for key, value in settings.items():
        phase, dot, sub = key.partition(".")
        if phase in PHASE_SIZES and dot:
            phases.setdefault(phase, {})[sub] = value
        elif key in PHASE_SIZES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: profile {profile!r} key {key!r} = {value!r}: give the phase's sizes "
                                  f"as a table ({key}.NAME = VALUE)")
            phases.setdefault(key, {}).update(value)
        else:
            own[key] = value
    return own, phases


def profile_from_config(name: str, settings: dict, *, where: str = "configuration",
                        base_dir: str | os.PathLike | None = None, known: dict | None = None) -> Profile:
    """A Profile from a table of settings; `base` names a profile to start from (default: ci)."""
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: profile {name!r} must be a table of settings, got {type(settings).__name__}")
    if not name or not name.replace("-", "_").isidentifier():
        raise ConfigError(f"{where}: profile name {name!r} must be a word (letters, digits, '-', '_')")
    pool = {**PROFILES, **_USER_PROFILES, **(known or {})}
    base_name = settings.get("base", "ci")
    if base_name not in pool:
        raise ConfigError(f"{where}: profile {name!r} has base {base_name!r}, which is not a profile; "
                          f"one of {', '.join(pool)}")
    own, phases = _phase_tables(name, settings, where)
    unknown = [k for k in own if k != "base" and k not in _CONFIGURABLE]
    if unknown:
        raise ConfigError(f"{where}: profile {name!r} has unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: base, {', '.join(_CONFIGURABLE)}, and the sizes "
                          f"{', '.join(f'{p}.NAME' for p in PHASE_SIZES)}")
    values = {k: _coerce(name, k, v, where) for k, v in own.items() if k != "base"}
    for key in ("dataset", "generation_prompts_file"):
        if key in values and base_dir is not None and not Path(values[key]).is_absolute():
            values[key] = str((Path(base_dir) / values[key]).resolve())
    base = pool[base_name]
    for phase, table in phases.items():
        sizes = {k: _coerce_size(name, phase, k, v, where) for k, v in table.items()}
        values[phase] = replace(getattr(base, phase), **sizes)
    return replace(base, name=name, **values)


def profiles_from_pyproject(path: str | os.PathLike) -> dict[str, Profile]:
    """The `[tool.emocheck.profiles.<name>]` tables of a pyproject.toml ({} when it has none)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("tool", {}).get("emocheck", {}).get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [tool.emocheck.profiles] must hold one table per profile")
    out: dict[str, Profile] = {}
    for name, settings in tables.items():
        out[name] = profile_from_config(name, settings, where=f"{path} [tool.emocheck.profiles.{name}]",
                                        base_dir=path.parent, known=out)
    return out


def profiles_from_ini_lines(lines: list[str], *, where: str = "pytest.ini emocheck_profiles",
                            base_dir: str | os.PathLike | None = None) -> dict[str, Profile]:
    """Lines `NAME: key=value key=value ...` (values with spaces in quotes; lists comma-separated)."""
    out: dict[str, Profile] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            raise ConfigError(f"{where}: line {line!r} must read 'NAME: key=value key=value ...'")
        settings = {}
        for item in shlex.split(rest):
            key, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f"{where}: profile {name.strip()!r}: {item!r} must be key=value")
            settings[key.strip()] = value
        out[name.strip()] = profile_from_config(name.strip(), settings, where=where, base_dir=base_dir, known=out)
    return out


def register_profiles(profiles: dict[str, Profile]) -> None:
    """Make user profiles known to get_profile (a built-in name cannot be redefined)."""
    clash = [n for n in profiles if n in BUILTIN_PROFILES]
    if clash:
        raise ConfigError(f"profile name(s) {', '.join(clash)} are built in; give your profile another name")
    _USER_PROFILES.update(profiles)


def clear_user_profiles() -> None:
    _USER_PROFILES.clear()


def get_profile(name: str | None = None, models: list[str] | None = None) -> Profile:
    """Return the named profile (default: $EMOCHECK_PROFILE or 'ci'), optionally with other models."""
    name = name or os.environ.get("EMOCHECK_PROFILE") or "ci"
    pool = {**PROFILES, **_USER_PROFILES}
    if name not in pool:
        pool.update(profiles_from_pyproject(Path.cwd() / "pyproject.toml"))
    if name not in pool:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {', '.join(pool)} "
            "(--emocheck-profile NAME or EMOCHECK_PROFILE=NAME; define your own in "
            "[tool.emocheck.profiles.NAME] of pyproject.toml or the emocheck_profiles key of pytest.ini)"
        )
    profile = pool[name]
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
