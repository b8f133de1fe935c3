"""Paired activations: relative depth, depth matching, and the same-prompts check."""
from types import SimpleNamespace

import pytest

from emocheck.alignment.paired import PairedActivations, depth_matched, relative_depth
from emocheck.errors import ConfigError


def test_relative_depth_and_matching():
    assert relative_depth(17, 18) == 1.0 and relative_depth(29, 30) == 1.0
    assert depth_matched(17, 18, 30) == 29
    assert depth_matched(8, 18, 30) == 14          # (9/18 = 0.5) -> layer 14 of 30 (15/30)
    assert depth_matched(0, 30, 18) == 0


def _reps(ids, positions=("last", "mean")):
    return SimpleNamespace(activations=SimpleNamespace(ids=list(ids), meta={"positions": list(positions)}),
                           model="m")


def test_paired_refuses_different_prompts_and_unknown_positions():
    with pytest.raises(ConfigError, match="different prompts"):
        PairedActivations(_reps(["a", "b"]), _reps(["a", "c"]))
    with pytest.raises(ConfigError, match="was not extracted"):
        PairedActivations(_reps(["a"]), _reps(["a"]), position="trigger_first")
    assert PairedActivations(_reps(["a"]), _reps(["a"]), position="mean").position == "mean"
