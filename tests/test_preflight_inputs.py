"""Bad inputs fail before any work with one message that says what to do: per-emotion prompt counts,
local model folders, hub ids, EMOCHECK_* settings and control characters in prompts."""
from dataclasses import replace

import pandas as pd
import pytest

from emocheck.dataset import load_emotion_prompts
from emocheck.errors import ConfigError, DatasetError, EmocheckError, ModelUnavailableError
from emocheck.plugin.preflight import check_models, preflight
from emocheck.profiles import get_profile


def _table(path, counts: dict[str, int], poison: str | None = None):
    rows = []
    for emotion, n in counts.items():
        for i in range(n):
            rows.append({"id": f"{emotion}-{i}", "emotion": emotion, "text": f"{emotion} message number {i}",
                         "trigger": "message"})
    if poison is not None:
        rows[3]["text"] = f"hello{poison} message"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def profile(monkeypatch):
    for var in ("EMOCHECK_DATASET", "EMOCHECK_DATA_DIR", "EMOCHECK_MODEL_CACHE", "EMOCHECK_DTYPE", "EMOCHECK_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    return replace(get_profile("ci"), models=("gpt2",), prompts_per_emotion=None)


def test_an_emotion_with_one_prompt_is_refused_at_preflight(tmp_path, monkeypatch, profile):
    monkeypatch.setenv("EMOCHECK_DATASET", str(_table(tmp_path / "p.csv", {"anger": 1, "joy": 10, "neutral": 10})))
    with pytest.raises(DatasetError) as err:
        preflight(profile, tmp_path / "results", models=[], dataset=True)
    message = str(err.value)
    assert "'anger' (1 prompt(s), 0 for training)" in message and "add prompts" in message
    assert "joy" not in message


def test_an_emotion_the_held_out_split_leaves_one_training_prompt_is_refused(tmp_path, monkeypatch, profile):
    monkeypatch.setenv("EMOCHECK_DATASET", str(_table(tmp_path / "p.csv", {"anger": 2, "joy": 10, "neutral": 10})))
    with pytest.raises(DatasetError, match=r"'anger' \(2 prompt\(s\), 1 for training\).*about 3 prompts"):
        preflight(profile, tmp_path / "results", models=[], dataset=True)
    monkeypatch.setenv("EMOCHECK_DATASET", str(_table(tmp_path / "q.csv", {"anger": 3, "joy": 10, "neutral": 10})))
    assert "dataset" in preflight(profile, tmp_path / "results", models=[], dataset=True)


@pytest.mark.parametrize("config", ['{"foo": 1}', '{"model_type": "no-such-architecture"}', "not json",
                                    '{"model_type": "llama"}'])
def test_a_local_folder_that_is_not_a_model_is_refused_before_transformers(tmp_path, config):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    with pytest.raises(ModelUnavailableError, match="save_pretrained"):
        check_models([str(folder.resolve())])        # given by absolute path


def test_a_missing_folder_given_by_absolute_path_says_so(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        check_models([str(tmp_path / "nowhere" / "model")])


@pytest.mark.parametrize("hub_id", ["org/../../../x", "org/..", "../x", "org/na--me", "a/b/c", "org/-x", "org/x."])
def test_a_malformed_hub_id_is_refused_at_preflight(hub_id):
    with pytest.raises(ModelUnavailableError, match="not a hub id|does not exist"):
        check_models([hub_id])


def test_well_formed_hub_ids_still_resolve():
    from emocheck.models.registry import resolve_spec

    for hub_id in ("EleutherAI/pythia-70m", "openai-community/gpt2", "Qwen/Qwen3-8B", "a_b/c.d-e"):
        assert resolve_spec(hub_id).hub_id == hub_id


@pytest.mark.parametrize("name, value, expected", [
    ("EMOCHECK_MODEL_CACHE", "FILE", "not a folder"),
    ("EMOCHECK_DTYPE", "float8", "unknown dtype 'float8'"),
    ("EMOCHECK_DEVICE", "gpu", "not a device"),
    ("EMOCHECK_DEVICE_MAP", "everywhere", "use auto"),
    ("EMOCHECK_EVALUATOR_THREADS", "four", "whole number"),
    ("EMOCHECK_EVALUATOR_THREADS", "0", "at least 1"),
    ("EMOCHECK_EMBEDDING_CACHE_SIZE", "lots", "whole number"),
    ("EMOCHECK_EVALUATOR_CACHE_SIZE", "-5", "whole number"),
    ("EMOCHECK_VERIFY_MODELS", "maybe", "use 1 or 0"),
    ("EMOCHECK_EVALUATOR_FALLBACK", "sometimes", "use 1 or 0"),
    ("EMOCHECK_GENERATION_ENGINE", "turbo", "one of auto, fast, nnsight"),
    ("EMOCHECK_DATASET", "MISSING", "no such file"),
    ("EMOCHECK_GENERATION_PROMPTS", "MISSING", "no such file"),
    ("EMOCHECK_DATA_DIR", "MISSING", "no such folder"),
    ("EMOCHECK_EVALUATOR_DATA", "MISSING", "no such folder"),
    ("EMOCHECK_MINILM_PATH", "MISSING", "no such folder"),
])
def test_environment_settings_are_checked_before_anything_runs(tmp_path, monkeypatch, profile, name, value, expected):
    if value == "FILE":
        value = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("x")
    elif value == "MISSING":
        value = str(tmp_path / "missing")
    monkeypatch.setenv(name, value)
    with pytest.raises(EmocheckError) as err:
        preflight(profile, tmp_path / "results", models=[], dataset=False)
    assert expected in str(err.value) and name in str(err.value)


def test_the_model_cache_on_a_file_is_one_clear_error_where_it_is_used(tmp_path, monkeypatch):
    from emocheck.models.registry import model_cache_root

    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("EMOCHECK_MODEL_CACHE", str(tmp_path / "a-file" / "models"))
    with pytest.raises(ModelUnavailableError, match="not a folder"):
        model_cache_root()


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x0c", "\x7f"])
def test_a_control_character_in_a_prompt_is_refused_with_its_line(tmp_path, char):
    path = _table(tmp_path / "p.csv", {"anger": 5, "neutral": 5}, poison=char)
    with pytest.raises(DatasetError) as err:
        load_emotion_prompts(path)
    message = str(err.value)
    assert f"{path} line 5" in message and f"U+{ord(char):04X}" in message and "remove it" in message


def test_tabs_and_newlines_in_a_prompt_are_text(tmp_path):
    path = _table(tmp_path / "p.csv", {"anger": 5, "neutral": 5}, poison="\tand\nmore")
    assert len(load_emotion_prompts(path)) == 10


def test_a_profile_setting_is_not_mistaken_for_an_environment_error(tmp_path, profile):
    assert preflight(profile, tmp_path / "results", models=[], dataset=False)[0] == "environment"
    with pytest.raises(ConfigError, match="held_out_fraction"):
        preflight(replace(profile, held_out_fraction=1.5), tmp_path / "results", models=[], dataset=False)
