"""Circuit figures and small helpers of the experiment driver (no model runs)."""
import numpy as np
import pytest

from emocheck.circuits.components import Component, split_mask, token_ids_for_words
from emocheck.circuits.experiment import EMOTION_WORDS, EMOTIONS, settings
from emocheck.circuits.figures import plot_circuit, plot_faithfulness
from emocheck.errors import ConfigError
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model


def _result():
    return {"model": "m", "emotion": "gratitude", "share": 0.8, "size": 3, "faithfulness": 0.85,
            "train_curve": [0.3, 0.6, 0.82, 0.9], "null_faithfulness": list(np.linspace(0, 0.3, 20)),
            "attribution": {"L0H1": -0.5, "L1MLP": -1.0, "L2H0": 0.2}}


def test_figures_are_written(tmp_path):
    comps = [Component("head", layer, h) for layer in range(3) for h in range(2)] + \
            [Component("mlp", layer) for layer in range(3)]
    plot_faithfulness(_result(), tmp_path / "f.png")
    plot_circuit(_result(), comps, 3, 2, tmp_path / "c.png", edges=[("L0H1", "L1MLP", 0.4), ("L1MLP", "L2H0", -0.1)])
    for name in ("f.png", "c.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_component_names_follow_transformerlens():
    assert Component("head", 5, 2).hook_name == "blocks.5.attn.hook_z.2"
    assert Component("mlp", 5).hook_name == "blocks.5.hook_mlp_out"
    assert Component("head", 5, 2).label == "L5H2" and Component("mlp", 5).label == "L5MLP"


def test_split_mask_and_word_tokens():
    import torch
    heads, mlps = split_mask(torch.arange(2 * (3 * 4 + 3)).reshape(2, 15), 3, 4)
    assert heads.shape == (2, 3, 4) and mlps.shape == (2, 3) and int(mlps[0, 0]) == 12
    with pytest.raises(ConfigError):
        split_mask(torch.zeros(1, 14), 3, 4)
    m = tiny_model("llama", n_layers=1)
    assert len(token_ids_for_words(m, ["thanks", "thank"])) == 1      # char tokenizer: both start with ' '


def test_every_emotion_has_words_and_settings_cover_profiles():
    assert set(EMOTION_WORDS) == set(EMOTIONS)
    for name in ("smoke", "ci", "full"):
        s = settings(get_profile(name))
        assert s["random"] >= 39 and s["held_out"] >= 6


def test_unknown_emotion_is_one_clear_error():
    from emocheck.circuits.experiment import run_circuit
    with pytest.raises(ConfigError, match="one of gratitude"):
        run_circuit("gemma3-270m", get_profile("smoke"), "joy")
