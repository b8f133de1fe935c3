"""The circuit summary (circuit_<emotion>.json) goes through the storage rule: read back only when its
checksum and key match; a damaged, truncated or stale file is rebuilt, never trusted."""
from __future__ import annotations

import json
import types

import pandas as pd
import pytest

import emocheck.circuits.experiment as ex
from emocheck.profiles import get_profile


@pytest.fixture
def fake_run(monkeypatch, results_tmp):
    prompts = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "emotion": ["gratitude", "neutral"] * 20,
                            "split": ["train"] * 24 + ["held_out"] * 16})
    reps = types.SimpleNamespace(prompts=prompts, vectors=types.SimpleNamespace(meta={"key": "vec-1"}))
    calls = []

    def compute(loaded, reps, emotion, cfg, seed, *texts_and_more):
        calls.append(emotion)
        return {"emotion": emotion, "circuit": ["L0MLP"], "n": len(calls)}

    monkeypatch.setattr("emocheck.representations.build.build_representations", lambda *a, **k: reps)
    monkeypatch.setattr("emocheck.models.registry.load_model", lambda name: object())
    monkeypatch.setattr(ex, "_compute", compute)
    return calls


def test_circuit_summary_is_cached_verified_and_rebuilt_when_damaged(fake_run):
    profile = get_profile("smoke")
    first = ex.run_circuit("tiny", profile, "gratitude", progress=False)
    assert fake_run == ["gratitude"] and first["n"] == 1
    assert ex.run_circuit("tiny", profile, "gratitude", progress=False) == first     # read back, not recomputed
    assert len(fake_run) == 1
    path = ex.out_dir(profile, "tiny") / "circuit_gratitude.json"
    sidecar = ex.circuit_meta_path(path)
    assert json.loads(sidecar.read_text())["key"] == first["key"]

    data = bytearray(path.read_bytes())                  # one flipped byte, still valid-looking JSON
    data[data.index(b'"L0MLP"') + 2] ^= 0x01
    path.write_bytes(bytes(data))
    again = ex.run_circuit("tiny", profile, "gratitude", progress=False)
    assert len(fake_run) == 2 and again["circuit"] == ["L0MLP"]

    path.write_bytes(path.read_bytes()[:10])             # truncated
    ex.run_circuit("tiny", profile, "gratitude", progress=False)
    assert len(fake_run) == 3

    sidecar.unlink()                                     # no checksum record: not trusted
    ex.run_circuit("tiny", profile, "gratitude", progress=False)
    assert len(fake_run) == 4
    assert ex.run_circuit("tiny", profile, "gratitude", progress=False)["n"] == 4


def test_old_unchecked_key_file_is_not_trusted(fake_run):
    """A circuit_<e>.json from before the storage rule (key inside, no sidecar) is rebuilt."""
    profile = get_profile("smoke")
    first = ex.run_circuit("tiny", profile, "gratitude", progress=False)
    path = ex.out_dir(profile, "tiny") / "circuit_gratitude.json"
    ex.circuit_meta_path(path).unlink()
    path.write_text(json.dumps({**first, "circuit": ["forged"]}))
    assert ex.run_circuit("tiny", profile, "gratitude", progress=False)["circuit"] == ["L0MLP"]
    assert len(fake_run) == 2
