"""Every phase's sizes come from the profile: the built-in profiles give exactly the sizes the phases
used before the sizes became profile fields (the literals below are those values, frozen), a profile
with `base = "full"` inherits full's sizes, and a user overrides any size in pyproject.toml or pytest.ini."""
from dataclasses import replace

import dataclasses

import pytest

from emocheck import profiles
from emocheck.circuits import experiment as circuits_experiment
from emocheck.errors import ConfigError
from emocheck.heads import experiment as heads_experiment
from emocheck.heads import generation as heads_generation
from emocheck.heads import growth as heads_growth
from emocheck.patching import experiment as patching_experiment

pytest_plugins = ["pytester"]

ALL_SECONDARY = ("negated", "specific", "subspace", "prompt", "dose_matched")
FROZEN = {
    "patching": {
        "smoke": {"judged_prompts": None, "tuning_prompts": 4, "fractions": (0.5,), "alphas": (0.5, 2.0),
                  "rows_per_batch": 64, "secondary": ALL_SECONDARY},
        "ci": {"judged_prompts": 20, "tuning_prompts": 4, "fractions": (0.5,), "alphas": (0.5, 1.0, 2.0, 4.0),
               "rows_per_batch": 192, "secondary": ("subspace", "prompt", "dose_matched")},
        "full": {"judged_prompts": None, "tuning_prompts": 8, "fractions": (0.25, 0.5, 0.75),
                 "alphas": (0.5, 1.0, 2.0, 4.0), "rows_per_batch": 192, "secondary": ALL_SECONDARY,
                 "null_prompts": 100, "secondary_prompts": 40},
    },
    "growth": {
        "smoke": {"exact_prompts": 4, "exact_sets": 4, "growth_sets": 4, "direct_sets": 200},
        "ci": {"exact_prompts": 12, "exact_sets": 30, "growth_sets": 10, "direct_sets": 1000},
        "full": {"exact_prompts": 40, "exact_sets": 40, "growth_sets": 10, "direct_sets": 2000},
    },
    "generation": {"smoke": {"judged_prompts": 8}, "ci": {"judged_prompts": 40}, "full": {"judged_prompts": 100}},
    "circuits": {
        "smoke": {"attr_prompts": 6, "neutral_prompts": 12, "exact_prompts": 1, "held_out": 6, "random": 39},
        "ci": {"attr_prompts": 12, "neutral_prompts": 24, "exact_prompts": 2, "held_out": 12, "random": 199},
        "full": {"attr_prompts": 64, "neutral_prompts": 147, "exact_prompts": 8, "held_out": 63, "random": 199},
    },
    "screen_prompts": {"smoke": None, "ci": 48, "full": None},
}
# Keys a phase reads with .get() (absent and None are the same size: "all" / "the default half").
OPTIONAL = ("null_prompts", "secondary_prompts")


@pytest.fixture(autouse=True)
def _clean():
    profiles.clear_user_profiles()
    yield
    profiles.clear_user_profiles()


def phase_sizes(profile) -> dict:
    """What each phase reads from a profile, as plain values."""
    patching = dict(patching_experiment.settings(profile))
    for key in OPTIONAL:
        patching.setdefault(key, None)
    return {
        "patching": {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in patching.items()},
        "growth": dict(heads_growth.settings(profile)),
        "generation": dict(heads_generation.settings(profile)),
        # the profile's own circuit sizes (settings() may raise `random` for the family: tested below)
        "circuits": dataclasses.asdict(profile.circuits),
        "screen_prompts": heads_experiment.screen_cap(profile),
    }


@pytest.mark.parametrize("name", ["smoke", "ci", "full"])
def test_builtin_profiles_keep_their_sizes(name):
    got = phase_sizes(profiles.get_profile(name))
    want = {phase: dict(values[name]) if isinstance(values[name], dict) else values[name]
            for phase, values in FROZEN.items()}
    for key in OPTIONAL:
        want["patching"].setdefault(key, None)
    assert got == want
    # the circuit's cache key hashes its settings dict: same keys, same order as before
    assert list(circuits_experiment.settings(profiles.get_profile(name))) == list(FROZEN["circuits"][name])


@pytest.mark.parametrize("name", ["smoke", "ci", "full"])
def test_circuit_null_draws_are_the_profiles_or_what_the_family_needs(name):
    from emocheck.stats.nulls import null_draws_for
    from emocheck.study import study_for

    p = profiles.get_profile(name)
    need = null_draws_for(len(study_for(p).emotions) * len(p.models))
    assert circuits_experiment.settings(p)["random"] == max(p.circuits.random, need)


def test_base_full_inherits_full_sizes(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.emocheck.profiles.paper]\nbase = "full"\nseed = 2\n')
    paper = profiles.profiles_from_pyproject(tmp_path / "pyproject.toml")["paper"]
    assert paper.name == "paper" and paper.seed == 2
    assert phase_sizes(paper) == phase_sizes(profiles.get_profile("full"))
    assert phase_sizes(paper) != phase_sizes(profiles.get_profile("ci"))


def test_sizes_override_in_pyproject_dotted_keys_and_sub_tables(tmp_path):
    (tmp_path / "pyproject.toml").write_text('''
[tool.emocheck.profiles.paper]
base = "full"
patching.judged_prompts = 50
patching.alphas = [1, 3]
heads.screen_prompts = "all"
[tool.emocheck.profiles.paper.circuits]
random = 99
held_out = 20
[tool.emocheck.profiles.later]
base = "paper"
heads.generation_prompts = 30
''')
    found = profiles.profiles_from_pyproject(tmp_path / "pyproject.toml")
    paper, later, full = found["paper"], found["later"], profiles.get_profile("full")
    sizes = phase_sizes(paper)
    assert sizes["patching"]["judged_prompts"] == 50 and sizes["patching"]["alphas"] == (1.0, 3.0)
    assert sizes["patching"]["null_prompts"] == 100          # the rest of full's phase-5 sizes stay
    assert sizes["circuits"] == {**FROZEN["circuits"]["full"], "random": 99, "held_out": 20}
    assert sizes["screen_prompts"] is None and sizes["growth"] == FROZEN["growth"]["full"]
    assert phase_sizes(later)["generation"] == {"judged_prompts": 30}
    assert phase_sizes(later)["circuits"] == sizes["circuits"]           # inherited through two bases
    assert phase_sizes(full) == phase_sizes(profiles.PROFILES["full"])   # the built-in is untouched


def test_sizes_override_in_ini_lines():
    found = profiles.profiles_from_ini_lines(
        ["mine: base=smoke patching.alphas=0.5,1 patching.secondary=prompt,negated circuits.random=19 "
         "patching.null_prompts=none"])
    sizes = phase_sizes(found["mine"])
    assert sizes["patching"]["alphas"] == (0.5, 1.0) and sizes["patching"]["secondary"] == ("prompt", "negated")
    assert sizes["circuits"]["random"] == 19 and sizes["patching"]["null_prompts"] is None
    assert sizes["growth"] == FROZEN["growth"]["smoke"]


@pytest.mark.parametrize("line, message", [
    ("mine: patching.colour=3", r"profile 'mine' key 'patching.colour'.*not a size of phase 'patching'; one of judged_prompts"),
    ("mine: wiring.x=3", r"profile 'mine' has unknown key\(s\) 'wiring.x'"),
    ("mine: circuits.random=0", r"key 'circuits.random' = '0': must be positive"),
    ("mine: circuits.random=all", r"key 'circuits.random' = 'all': must be a whole number"),
    ("mine: patching.fractions=1.5", r"key 'patching.fractions'.*between 0 and 1"),
    ("mine: patching.alphas=x", r"key 'patching.alphas'.*positive numbers"),
    ("mine: patching.secondary=prompt,bogus", r"key 'patching.secondary'.*'bogus'.*one of negated"),
    ("mine: patching=3", r"key 'patching' = '3': give the phase's sizes as a table"),
])
def test_bad_sizes_are_one_clear_error(line, message):
    with pytest.raises(ConfigError, match=message):
        profiles.profiles_from_ini_lines([line])


def test_sizes_through_pytest_config(pytester, monkeypatch):
    """The real config path: a pyproject.toml profile with base = "full" and one override, read by the
    plugin at configure time, is the profile every phase sees."""
    for var in ("EMOCHECK_RESULTS_DIR", "EMOCHECK_PROFILE", "EMOCHECK_DATASET"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyprojecttoml('''
[tool.emocheck.profiles.paper]
base = "full"
models = ["smollm2-135m"]
circuits.random = 99
''')
    pytester.makepyfile(test_sizes='''
from emocheck.circuits.experiment import settings as circuit_settings
from emocheck.patching.experiment import settings as patching_settings

def test_sizes(emocheck_profile):
    assert emocheck_profile.name == "paper"
    assert emocheck_profile.circuits.random == 99
    assert circuit_settings(emocheck_profile)["random"] >= 99     # raised to what the family needs
    assert circuit_settings(emocheck_profile)["held_out"] == 63
    assert patching_settings(emocheck_profile)["null_prompts"] == 100
''')
    result = pytester.runpytest("--emocheck-profile", "paper", "--emocheck-results", str(pytester.path / "r"),
                                "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1)


def test_replace_keeps_sizes():
    smoke = profiles.get_profile("smoke")
    renamed = replace(smoke, name="renamed")
    assert phase_sizes(renamed) == phase_sizes(smoke)      # sizes no longer depend on the name
