"""Finding 2 (issue 15): the de-quantised model cache is verified by content checksum, rebuilt when
damaged, and shareable (modes from the umask, EMOCHECK_MODEL_CACHE)."""
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from emocheck.models import registry
from emocheck.testing import tiny_model

CHECKSUM = "ab" * 32


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A 'GGUF' model whose de-quantised copy is a tiny random Llama saved by save_pretrained."""
    cache = tmp_path / "shared-cache"
    monkeypatch.setenv("EMOCHECK_MODEL_CACHE", str(cache))
    tiny = tiny_model("llama", n_layers=2)
    writes = []

    def write_copy(gguf_path, cache_dir, checksum):
        writes.append(cache_dir)
        registry._install_copy(cache_dir, checksum, lambda tmp: (tiny.model.save_pretrained(tmp),
                                                                 tiny.tokenizer.save_pretrained(tmp)))

    monkeypatch.setattr(registry, "_write_dequantised_copy", write_copy)
    monkeypatch.setattr(registry, "_gguf_checksum", lambda path: CHECKSUM)
    spec = registry.ModelSpec("fake", "gguf-file", gguf_name=str(tmp_path / "fake.gguf"))
    return spec, tiny, writes, cache


def _logits(model):
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def _weights(spec) -> Path:
    return registry._dequantised_dir(spec, CHECKSUM) / "model.safetensors"


def test_byte_flip_in_place_is_detected_and_the_copy_rebuilt(fake_gguf):
    spec, tiny, writes, _ = fake_gguf
    model, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 1
    ref = _logits(model)
    path = _weights(spec)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 4096):   # XOR a block in place: same size
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    model2, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 2                                    # not trusted: rebuilt
    assert torch.equal(_logits(model2), ref)


def _damage_keeping_size_and_mtime(path: Path, n: int = 1 << 20) -> None:
    """XOR up to 1 MiB of the tensor data in place (the header stays parseable); size and mtime as recorded."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    for i in range(start, min(len(data), start + n)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_damage_that_keeps_size_and_mtime_is_caught_by_default(fake_gguf, monkeypatch):
    spec, _, writes, _ = fake_gguf
    monkeypatch.delenv("EMOCHECK_VERIFY_MODELS", raising=False)
    model, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    ref = _logits(model)
    _damage_keeping_size_and_mtime(_weights(spec))
    assert not registry._dequantised_copy_ok(_weights(spec).parent)      # the default check sees it
    model2, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 2                                                # rebuilt, not served
    assert torch.equal(_logits(model2), ref)
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 2                                                # and the rebuilt copy is trusted


def test_the_full_check_verifies_sha256(fake_gguf, monkeypatch):
    spec, _, writes, _ = fake_gguf
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    cache_dir = _weights(spec).parent
    assert registry._dequantised_copy_ok(cache_dir, full=True)
    _damage_keeping_size_and_mtime(_weights(spec), n=1)
    assert not registry._dequantised_copy_ok(cache_dir, full=True)
    monkeypatch.setenv("EMOCHECK_VERIFY_MODELS", "1")
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 2


def test_a_manifest_without_the_fast_digest_is_upgraded_after_its_sha256_is_checked(fake_gguf):
    spec, _, writes, _ = fake_gguf
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    mpath = _weights(spec).parent / "emocheck_manifest.json"
    record = json.loads(mpath.read_text())
    for m in record["files"].values():
        del m["xxh3_128"]                                                  # an older emocheck's manifest
    mpath.write_text(json.dumps(record))
    assert registry._dequantised_copy_ok(mpath.parent)
    assert all("xxh3_128" in m for m in json.loads(mpath.read_text())["files"].values())
    for m in record["files"].values():
        m.pop("xxh3_128", None)
    mpath.write_text(json.dumps(record))
    _damage_keeping_size_and_mtime(_weights(spec), n=1)
    assert not registry._dequantised_copy_ok(mpath.parent)                 # the upgrade never vouches for damage
    assert len(writes) == 1


def test_touching_without_changing_is_not_a_rebuild(fake_gguf):
    spec, _, writes, _ = fake_gguf
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    os.utime(_weights(spec), None)                             # mtime moves, content does not
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 1
    manifest = json.loads((_weights(spec).parent / "emocheck_manifest.json").read_text())
    assert manifest["files"]["model.safetensors"]["mtime_ns"] == _weights(spec).stat().st_mtime_ns


def test_a_size_only_manifest_is_upgraded_to_checksums_once(fake_gguf):
    spec, _, writes, _ = fake_gguf
    registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    mpath = _weights(spec).parent / "emocheck_manifest.json"
    record = json.loads(mpath.read_text())
    record["files"] = {rel: {"size": m["size"]} for rel, m in record["files"].items()}   # the old layout
    mpath.write_text(json.dumps(record))
    assert registry._dequantised_copy_ok(mpath.parent)
    upgraded = json.loads(mpath.read_text())["files"]
    assert all("sha256" in m for m in upgraded.values()) and len(writes) == 1


def test_cache_is_group_readable_under_a_group_umask(fake_gguf):
    spec, _, _, cache = fake_gguf
    old = os.umask(0o002)
    try:
        registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    finally:
        os.umask(old)
    copy = _weights(spec).parent
    assert copy.parent == cache                                    # EMOCHECK_MODEL_CACHE is used
    assert stat.S_IMODE(copy.stat().st_mode) == 0o775             # not mkdtemp's 0700
    for p in copy.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o664, p.name    # not 0600
    assert not [p for p in cache.iterdir() if p.name.endswith((".tmp", ".lock"))]


def test_a_copy_damaged_so_that_it_does_not_parse_is_rebuilt_not_raised(fake_gguf):
    spec, _, writes, _ = fake_gguf
    model, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    ref = _logits(model)
    path = _weights(spec)
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[8:40] = b"\xff" * 32                         # the JSON header, same size
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    model2, _, _ = registry._load_gguf(spec, Path(spec.gguf_name), torch.float32)
    assert len(writes) == 2 and torch.equal(_logits(model2), ref)
