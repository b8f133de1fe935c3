"""Devices: one GPU per xdist worker, device_map placement (accelerate) and device-mapped loading,
checked without a GPU."""
from __future__ import annotations

import pytest
import torch

from emocheck.models import registry
from emocheck.models.devices import device_for_worker, plan_device_map, xdist_worker_index
from emocheck.testing import tiny_config, tiny_model


def test_worker_index_and_device(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)   # None means "read it from the environment"
    assert xdist_worker_index("gw0") == 0 and xdist_worker_index("gw13") == 13
    assert xdist_worker_index("master") is None and xdist_worker_index("") is None
    assert [device_for_worker(f"gw{i}", 4) for i in range(6)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert device_for_worker(None, 2) == "cuda:0"
    assert device_for_worker("gw3", 0) == "cpu"


def test_select_device_assigns_a_gpu_per_worker(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("EMOCHECK_DEVICE", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert registry.select_device("auto") == torch.device("cuda:1")
    assert registry.select_device("cuda") == torch.device("cuda:1")
    assert registry.select_device("cuda:0") == torch.device("cuda:0")       # explicit index is kept
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert registry.select_device(None) == torch.device("cuda:0")


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "qwen3"])
def test_plan_device_map_spreads_whole_blocks(family):
    cfg = tiny_config(family, n_layers=6)
    full = plan_device_map(cfg, {"cpu": 10**9}, dtype=torch.float32)
    assert set(full.values()) == {"cpu"}
    model = tiny_model(family, n_layers=6).model
    block = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
    emb = sum(p.numel() * 4 for p in model.model.embed_tokens.parameters())
    dm = plan_device_map(cfg, {0: emb + 2 * block + 1, 1: 3 * block + 1, "cpu": 10**9}, dtype=torch.float32)
    layer_devices = {k: v for k, v in dm.items() if ".layers." in k}
    assert len(layer_devices) == 6 or any(k.endswith(".layers") for k in dm)
    assert {0, 1} <= set(dm.values())
    # blocks are never split: every placed key is a whole block or a top-level module
    assert not any(k.count(".") > 2 for k in dm)


def test_device_mapped_load_and_generation(tmp_path, monkeypatch):
    import transformers

    from emocheck.patching.engine import generate_fast
    from emocheck.patching.residual import PatchSpec, generate_patched_nnsight

    tiny = tiny_model("llama", n_layers=3, seed=2)
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.tokenizer.save_pretrained(tmp_path / "m")
    seen = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return original(*args, **kwargs)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    registry.unload_all()
    mapped = registry.load_model(str(tmp_path / "m"), device="cpu", dtype="float32", device_map="auto")
    assert seen == ["auto"]                                    # accelerate places the blocks
    assert mapped.device == torch.device("cpu")                # inputs go where the embeddings are
    spec = PatchSpec(layers=(1,), alpha=2.0, window=(0, 3), max_new_tokens=6)
    v = torch.randn(2, 64, generator=torch.Generator().manual_seed(0)) * 3
    a = generate_fast(mapped, ["hello", "hi there"], spec, v)
    b = generate_patched_nnsight(tiny, ["hello", "hi there"], spec, v)
    assert torch.equal(a.new_tokens, b.new_tokens)
    registry.unload_all()


def test_remote_option_sets_the_environment():
    """`--emocheck-remote local` reaches the generation code as $EMOCHECK_REMOTE (no network)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import os\ndef test_env():\n    assert os.environ['EMOCHECK_REMOTE'] == 'local'\n")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "test_remote_env.py").write_text(code)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--emocheck-remote", "local", "--emocheck-results", d, str(Path(d) / "test_remote_env.py")],
                           cwd=d, capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stdout + r.stderr
