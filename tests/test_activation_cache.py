import json
import multiprocessing as mp

import pytest
import torch

from emocheck.representations import cache as activation_cache
from emocheck.representations.cache import cached_activations
from emocheck.testing import tiny_model

TEXTS = ["Thanks so much for the help!", "Hi there", "I am furious about the late parcel."]
TRIGGERS = ["Thanks so much", "there", "furious"]
IDS = ["a", "b", "c"]


class CountingLoader:
    def __init__(self):
        self.calls = 0
        self.model = tiny_model("llama", n_layers=2)

    def __call__(self):
        self.calls += 1
        return self.model


def _get(loader, tmp_path, **kw):
    activation_cache.clear_memo()
    return cached_activations(loader, loader.model.identity, IDS, TEXTS, TRIGGERS, tmp_path, n_layers=2,
                              progress=False, **kw)


def test_warm_cache_does_not_load_the_model_and_is_identical(tmp_path):
    loader = CountingLoader()
    cold = _get(loader, tmp_path)
    warm = _get(loader, tmp_path)
    assert loader.calls == 1
    assert set(cold.tensors) == set(warm.tensors)
    for name in cold.tensors:
        assert torch.equal(cold.tensors[name], warm.tensors[name])
    files = sorted(p.suffix for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert files == [".json", ".safetensors"]          # safetensors + JSON, no pickle


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_json", "garbage_json"])
def test_corrupt_cache_is_rebuilt_never_trusted(tmp_path, damage):
    loader = CountingLoader()
    good = _get(loader, tmp_path)
    tensor_file = next(tmp_path.glob("*.safetensors"))
    meta_file = tensor_file.with_suffix(".json")
    data = tensor_file.read_bytes()
    if damage == "truncate":
        tensor_file.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        tensor_file.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    elif damage == "drop_json":
        meta_file.unlink()
    else:
        meta_file.write_text("{not json")
    rebuilt = _get(loader, tmp_path)
    assert loader.calls == 2
    for name in good.tensors:
        assert torch.allclose(good.tensors[name], rebuilt.tensors[name])
    assert json.loads(meta_file.read_text())["sha256"]


def test_key_depends_on_what_determines_the_numbers(tmp_path):
    loader = CountingLoader()
    _get(loader, tmp_path)
    _get(loader, tmp_path, positions=("last",))
    activation_cache.clear_memo()
    cached_activations(loader, loader.model.identity, IDS, [t + "!" for t in TEXTS], TRIGGERS, tmp_path, n_layers=2,
                       progress=False)
    activation_cache.clear_memo()
    cached_activations(loader, {**loader.model.identity, "seed": 99}, IDS, TEXTS, TRIGGERS, tmp_path, n_layers=2,
                       progress=False)
    assert loader.calls == 4
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def _worker(path, queue):
    loader = CountingLoader()
    acts = cached_activations(loader, loader.model.identity, IDS, TEXTS, TRIGGERS, path, n_layers=2, progress=False)
    queue.put((loader.calls, float(acts.get(1, position="last").sum())))


def test_concurrent_processes_compute_once(tmp_path):
    """Like xdist workers asking for the same activations: one computes, the others read."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(tmp_path, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(calls for calls, _ in results) == 1
    assert len({value for _, value in results}) == 1


# Everything in the sidecar that says what a row or a tensor is counts as much as the tensors: an edited
# id, layer, site, position or key is detected and the entry rebuilt, never served.
def _edit_ids_flip(meta):
    meta["ids"][1] = meta["ids"][1][:-1] + chr(ord(meta["ids"][1][-1]) + 1)    # 'b' -> 'c' style: one character


def _edit_ids_swap(meta):
    meta["ids"][0], meta["ids"][2] = meta["ids"][2], meta["ids"][0]


def _edit_layers_reverse(meta):
    meta["layers"] = meta["layers"][::-1]


def _edit_sites(meta):
    meta["sites"] = meta["sites"][::-1]


def _edit_positions(meta):
    meta["positions"] = meta["positions"][::-1]


def _edit_key(meta):
    meta["model_identity"]["name"] = "another-model"


@pytest.mark.parametrize("edit", [_edit_ids_flip, _edit_ids_swap, _edit_layers_reverse, _edit_sites, _edit_positions,
                                  _edit_key], ids=lambda f: f.__name__[6:])
def test_an_edited_sidecar_field_is_detected_and_the_entry_rebuilt(tmp_path, edit):
    loader = CountingLoader()
    good = _get(loader, tmp_path)
    meta_file = next(tmp_path.glob("*.safetensors")).with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    edit(meta)
    meta_file.write_text(json.dumps(meta))          # tensors untouched, their checksum still matches
    rebuilt = _get(loader, tmp_path)
    assert loader.calls == 2                        # not served: rebuilt
    assert rebuilt.ids == IDS and rebuilt.layers == good.layers
    assert rebuilt.meta["sites"] == good.meta["sites"] and rebuilt.meta["positions"] == good.meta["positions"]
    for name in good.tensors:
        assert torch.equal(good.tensors[name], rebuilt.tensors[name])
