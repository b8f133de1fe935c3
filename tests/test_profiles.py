"""Profiles as configuration: [tool.emocheck.profiles.<name>] in pyproject.toml and the pytest.ini key
emocheck_profiles; built-ins stay; an unknown key, a bad value or an unknown base is one clear error."""
import pytest

from emocheck import profiles
from emocheck.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean():
    profiles.clear_user_profiles()
    yield
    profiles.clear_user_profiles()


def test_pyproject_profiles(tmp_path):
    (tmp_path / "pyproject.toml").write_text('''
[project]
name = "x"
[tool.emocheck.profiles.tiny]
base = "smoke"
models = ["smollm2-135m"]
prompts_per_emotion = 12
seed = 3
dataset = "data/mine.jsonl"
[tool.emocheck.profiles.tinier]
base = "tiny"
prompts_per_emotion = "all"
''')
    found = profiles.profiles_from_pyproject(tmp_path / "pyproject.toml")
    tiny = found["tiny"]
    assert tiny.models == ("smollm2-135m",) and tiny.prompts_per_emotion == 12 and tiny.seed == 3
    assert tiny.new_tokens == profiles.PROFILES["smoke"].new_tokens           # inherited from the base
    assert tiny.dataset == str((tmp_path / "data" / "mine.jsonl").resolve())  # relative to the file
    assert found["tinier"].prompts_per_emotion is None and found["tinier"].seed == 3
    profiles.register_profiles(found)
    assert profiles.get_profile("tiny") == tiny
    assert profiles.get_profile("ci") == profiles.PROFILES["ci"]             # built-ins stay


def test_ini_lines():
    found = profiles.profiles_from_ini_lines(["# comment", "mine: base=ci models=a,b held_out_fraction=0.25 "
                                              "generation_prompts=12 dataset='my data.jsonl'"], base_dir="/x")
    mine = found["mine"]
    assert mine.models == ("a", "b") and mine.held_out_fraction == 0.25 and mine.generation_prompts == 12
    assert mine.dataset == "/x/my data.jsonl"


@pytest.mark.parametrize("line, message", [
    ("mine: colour=red", r"profile 'mine' has unknown key\(s\) 'colour'; allowed: base, models"),
    ("mine: seed=one", r"key 'seed' = 'one': must be a whole number"),
    ("mine: prompts_per_emotion=0", r"must be positive"),
    ("mine: held_out_fraction=1.5", r"must lie between 0 and 1"),
    ("mine: base=huge", r"base 'huge', which is not a profile"),
    ("mine seed=1", r"must read 'NAME: key=value"),
    ("mine: seed", r"'seed' must be key=value"),
])
def test_bad_ini_profiles_are_clear(line, message):
    with pytest.raises(ConfigError, match=message):
        profiles.profiles_from_ini_lines([line])


def test_bad_pyproject_and_builtin_clash(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text("[tool.emocheck.profiles.x]\nbatch = 3\n")
    with pytest.raises(ConfigError, match=r"\[tool.emocheck.profiles.x\]: profile 'x' has unknown key\(s\) 'batch'"):
        profiles.profiles_from_pyproject(p)
    p.write_text("[tool.emocheck.profiles\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        profiles.profiles_from_pyproject(p)
    with pytest.raises(ConfigError, match="built in"):
        profiles.register_profiles({"ci": profiles.PROFILES["ci"]})
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*tool.emocheck.profiles"):
        profiles.get_profile("nope")
