"""`emocheck cache list|size|verify|clear` on a tiny model's real results (activations, vectors,
subspaces written by build_representations) plus one artefact of each other kind and a model copy
written by the model cache's own writer."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from emocheck import caches, cli
from emocheck.filelocks import file_lock
from emocheck.storage import json_bytes, write_artifact, write_manifest, write_table_artifact


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from emocheck.testing import tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    tiny = tiny_model("llama", n_layers=2)
    tiny.model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def built(tiny_dir, tmp_path_factory):
    """A results root with the tiny model's smoke representations (built once for the module)."""
    from emocheck.profiles import get_profile
    from emocheck.representations.build import _MEMO, build_representations
    from emocheck.representations.cache import clear_memo

    root = tmp_path_factory.mktemp("built") / "results"
    old = os.environ.get("EMOCHECK_RESULTS_DIR")
    os.environ["EMOCHECK_RESULTS_DIR"] = str(root)
    try:
        build_representations(str(tiny_dir), get_profile("smoke"), progress=False)
    finally:
        _MEMO.clear()
        clear_memo()
        if old is None:
            os.environ.pop("EMOCHECK_RESULTS_DIR")
        else:
            os.environ["EMOCHECK_RESULTS_DIR"] = old
    return root


@pytest.fixture
def roots(built, tmp_path, monkeypatch):
    """A fresh copy of the built results plus one artefact of each other kind, and a model cache."""
    import shutil

    from emocheck.models.registry import _install_copy

    results = tmp_path / "results"
    shutil.copytree(built, results)
    smoke = results / "smoke"
    write_table_artifact(smoke / "patching" / "residual" / "tiny-llama" / "gratitude" / "samples.parquet",
                         pd.DataFrame({"text": ["a", "b"], "score": [0.1, 0.2]}), {"key": "s1"},
                         meta_path=smoke / "patching" / "residual" / "tiny-llama" / "gratitude" / "samples.json")
    circuit = smoke / "circuits" / "other-model" / "circuit_anger.json"
    write_artifact(circuit, json_bytes({"edges": [1, 2]}), {"key": "c1"},
                   meta_path=circuit.with_name("circuit_anger.sha256.json"))
    align = smoke / "alignment" / "tiny-llama_vs_other-model" / "last"
    align.mkdir(parents=True)
    (align / "layer_pairs.csv").write_text("a,b\n1,2\n")
    from emocheck.storage import sha256_file

    (align / "summary.json").write_text(json.dumps({"files": {"layer_pairs.csv": sha256_file(align / "layer_pairs.csv")}}))
    stats = smoke / "statistics"
    stats.mkdir()
    (stats / "session.json").write_text(json.dumps({"claims": []}))
    write_manifest(stats, [stats / "session.json"])
    (smoke / "activations" / "notes.txt").write_text("mine, not emocheck's")
    cache = tmp_path / "models"
    for name in ("tiny-llama", "other-model"):
        _install_copy(cache / f"{name}-0123456789abcdef-v1", "0" * 64,
                      lambda tmp: (tmp / "model.safetensors").write_bytes(os.urandom(256)))
    monkeypatch.delenv("EMOCHECK_RESULTS_DIR", raising=False)
    monkeypatch.delenv("EMOCHECK_MODEL_CACHE", raising=False)
    return results, cache


def _cli(capsys, roots, *args):
    results, cache = roots
    code = cli.main(["cache", *args, "--results", str(results), "--model-cache", str(cache)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_list_and_size_show_every_kind_and_add_up_to_the_bytes_on_disk(roots, capsys):
    results, cache = roots
    entries = caches.list_entries(results=results, model_cache=cache)
    kinds = {(e.kind, e.model) for e in entries}
    assert {("activations", "tiny-llama"), ("emotion_vectors", "tiny-llama"), ("emotion_subspaces", "tiny-llama"),
            ("patching", "tiny-llama"), ("circuits", "other-model"), ("alignment", "tiny-llama_vs_other-model"),
            ("model copy", "tiny-llama"), ("model copy", "other-model")} <= kinds
    acts = [e for e in entries if e.kind == "activations" and e.sidecar is not None]
    assert len(acts) == 1 and acts[0].payload.suffix == ".safetensors"
    own = [p for p in _files(results) if p.suffix in caches.OWN_SUFFIXES]
    on_disk = sum(p.stat().st_size for p in own) + sum(p.stat().st_size for p in _files(cache) if p.parent != cache)
    assert sum(e.size for e in entries) == on_disk
    code, out, _ = _cli(capsys, roots, "list")
    assert code == 0
    assert any(ln.split()[:3] == ["smoke", "activations", "tiny-llama"] for ln in out.splitlines())
    assert any(ln.split()[:4] == ["-", "model", "copy", "tiny-llama"] for ln in out.splitlines())
    code, out, _ = _cli(capsys, roots, "size")
    assert code == 0 and f"in {len(entries)} entries" in out


def test_verify_passes_then_names_each_damaged_artefact(roots, capsys):
    results, cache = roots
    code, out, _ = _cli(capsys, roots, "verify")
    assert code == 0 and ", 0 problem(s)" in out, out
    act = next((results / "smoke" / "activations" / "tiny-llama").glob("*.safetensors"))
    data = bytearray(act.read_bytes())
    data[-1] ^= 0xFF                                  # one flipped bit in the tensors, same size
    act.write_bytes(bytes(data))
    (results / "smoke" / "statistics" / "session.json").write_text(json.dumps({"claims": [1]}))
    (results / "smoke" / "alignment" / "tiny-llama_vs_other-model" / "last" / "layer_pairs.csv").write_text("x\n")
    copy = cache / "other-model-0123456789abcdef-v1" / "model.safetensors"
    copy.write_bytes(os.urandom(256))
    code, out, _ = _cli(capsys, roots, "verify")
    assert code == 1
    damaged = {ln.split()[1].rstrip(":") for ln in out.splitlines() if ln.startswith("DAMAGED")}
    assert damaged == {str(act), str(results / "smoke" / "statistics" / "session.json"),
                       str(results / "smoke" / "alignment" / "tiny-llama_vs_other-model" / "last" / "layer_pairs.csv"),
                       str(cache / "other-model-0123456789abcdef-v1")}
    assert act.read_bytes() == bytes(data)            # verify changes nothing


def test_clear_by_model_removes_only_that_models_files(roots, capsys):
    results, cache = roots
    before = set(_files(results))
    code, out, _ = _cli(capsys, roots, "clear", "--model", "tiny-llama", "--dry-run")
    assert code == 0 and "would remove" in out and set(_files(results)) == before
    code, out, _ = _cli(capsys, roots, "clear", "--model", "tiny-llama")
    assert code == 0, out
    left = {p.relative_to(results).as_posix() for p in _files(results)}
    assert not any("tiny-llama" in p for p in left), left
    assert "smoke/circuits/other-model/circuit_anger.json" in left
    assert "smoke/activations/notes.txt" in left and "smoke/statistics/session.json" in left
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["other-model-0123456789abcdef-v1"]
    assert not (results / "smoke" / "activations" / "tiny-llama").exists()   # emptied folders go too


def test_clear_by_profile_keeps_foreign_files_and_refuses_links_out_of_the_root(roots, capsys, tmp_path):
    results, cache = roots
    outside = tmp_path / "shared-activations"
    outside.mkdir()
    write_artifact(outside / "k.safetensors", b"payload", {"key": "k"})
    (results / "smoke" / "activations" / "shared").symlink_to(outside, target_is_directory=True)
    code, out, err = _cli(capsys, roots, "clear", "--profile", "smoke")
    assert code == 1 and "REFUSED" in err and "resolves outside" in err
    assert sorted(p.name for p in outside.iterdir()) == ["k.json", "k.safetensors"]   # untouched
    left = {p.relative_to(results).as_posix() for p in _files(results)}
    assert left == {"smoke/activations/notes.txt"}      # (rglob does not follow the link)
    assert (results / "smoke" / "activations" / "shared").is_symlink()
    assert "left 1 file(s) emocheck did not write" in out
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2      # --profile leaves the model cache alone


def test_clear_needs_a_selection_and_a_safe_root(roots, capsys, monkeypatch):
    code, _, err = _cli(capsys, roots, "clear")
    assert code == 2 and "needs --profile P and/or --model M" in err
    from emocheck.errors import ConfigError

    for root in (Path("/"), Path.home()):
        with pytest.raises(ConfigError, match="refusing to clear"):
            caches.clear([caches.Entry(root, "smoke", "activations", None, [root / "x.json"])])
    # the CLI says the same in one line, before anything is removed
    home_results = Path.home()
    monkeypatch.setattr(caches, "list_entries", lambda **kw: [
        caches.Entry(home_results, "smoke", "activations", None, [home_results / "x.json"])])
    code, _, err = _cli(capsys, roots, "clear", "--profile", "smoke")
    assert code == 2 and "refusing to clear: the results root is" in err


def test_clear_waits_for_a_writer_holding_the_artefacts_lock(roots, capsys):
    results, _ = roots
    act = next((results / "smoke" / "activations" / "tiny-llama").glob("*.safetensors"))
    held, release = threading.Event(), threading.Event()

    def writer():
        with file_lock(act):
            held.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    held.wait(10)
    timer = threading.Timer(1.0, release.set)
    timer.start()
    start = time.monotonic()
    code, _, _ = _cli(capsys, roots, "clear", "--model", "tiny-llama", "--profile", "smoke")
    waited = time.monotonic() - start
    t.join()
    assert code == 0 and not act.exists()
    assert waited >= 0.9                               # it waited for the lock holder
