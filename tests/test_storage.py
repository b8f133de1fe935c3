import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from emocheck.storage import atomic_save_figure, atomic_write_bytes, atomic_write_json, stable_hash


def test_atomic_write_replaces_whole_file_and_is_readable_by_others(tmp_path):
    path = tmp_path / "a" / "f.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    atomic_write_json(path, {"c": 3})
    assert path.read_text().strip() == '{\n  "c": 3\n}'
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044 == 0o044   # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]   # no temporary left behind


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": Unserialisable()})
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_figure_is_saved_as_png_and_closed(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    atomic_save_figure(fig, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


# ------------------------------------------------------------------ the one rule (issue 15)

import json as _json
import multiprocessing as _mp
import time as _time

import pandas as _pd
import torch as _torch

from emocheck import storage


def test_artifact_is_verified_on_read_and_never_trusted_when_damaged(tmp_path):
    path = tmp_path / "x.bin"
    record = storage.write_artifact(path, b"payload" * 100, {"key": "A"})
    assert record["sha256"] == storage.sha256_bytes(b"payload" * 100) and record["size"] == 700
    assert storage.read_artifact(path, key="A") == (b"payload" * 100, {**record})
    assert storage.read_artifact(path, key="B") is None            # stale key
    flipped = bytearray(path.read_bytes())
    flipped[10] ^= 0xFF
    path.write_bytes(bytes(flipped))                                # same size, one byte changed
    assert storage.read_artifact(path, key="A") is None
    path.write_bytes(b"payload")                                    # truncated
    assert storage.read_artifact(path) is None
    storage.sidecar_path(path).write_text("{not json")
    assert storage.read_artifact(path) is None                      # unreadable record: rebuild, no raise
    assert storage.read_artifact(tmp_path / "absent.bin") is None


def test_tensor_and_table_artifacts_round_trip_and_rebuild(tmp_path):
    t = {"a": _torch.arange(6.0).reshape(2, 3)}
    storage.save_tensors_artifact(tmp_path / "t.safetensors", t, {"key": "k"})
    got, meta = storage.load_tensors_artifact(tmp_path / "t.safetensors", key="k")
    assert _torch.equal(got["a"], t["a"]) and meta["key"] == "k"
    df = _pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    for name in ("s.parquet", "s.csv"):
        storage.write_table_artifact(tmp_path / name, df, {"key": "k"})
        assert storage.read_table_artifact(tmp_path / name, key="k").equals(df)
    (tmp_path / "s.parquet").write_bytes((tmp_path / "s.parquet").read_bytes()[:50])   # truncated Parquet
    assert storage.read_table_artifact(tmp_path / "s.parquet", key="k") is None


def _build_once(path, queue):
    calls = []

    def build():
        calls.append(1)
        _time.sleep(0.3)
        return b"built"

    payload, _ = storage.cached_artifact(path, "k", build)
    queue.put((len(calls), payload))


def test_cached_artifact_builds_once_across_processes(tmp_path):
    ctx = _mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_once, args=(tmp_path / "a.bin", queue)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(c for c, _ in got) == 1 and {p for _, p in got} == {b"built"}


def test_manifest_vouches_for_a_folder_and_prune_removes_an_earlier_sessions_files(tmp_path):
    (tmp_path / "old.csv").write_text("from an earlier session")
    past = _time.time() - 100
    os.utime(tmp_path / "old.csv", (past, past))
    started = _time.time() - 1
    storage.atomic_write_text(tmp_path / "a.csv", "x\n1\n")
    (tmp_path / "sub").mkdir()
    storage.atomic_write_text(tmp_path / "sub" / "b.md", "# b")
    storage.write_manifest(tmp_path, [tmp_path / "a.csv", tmp_path / "sub" / "b.md"])
    assert storage.verify_manifest(tmp_path) == {}
    assert storage.read_verified(tmp_path, "sub/b.md") == b"# b"
    (tmp_path / "a.csv").write_text("x\n2\n")
    assert storage.verify_manifest(tmp_path) == {"a.csv": "does not match its checksum"}
    assert storage.read_verified(tmp_path, "a.csv") is None
    # a later session: its manifest names what emocheck wrote; only those files may go
    (tmp_path / "my_notes.txt").write_text("the user's")
    os.utime(tmp_path / "my_notes.txt", (past, past))
    for name in ("a.csv", "sub/b.md"):
        os.utime(tmp_path / name, (past, past))
    previous = storage.manifest_files(tmp_path)
    assert previous == {"a.csv", "sub/b.md"}
    removed, foreign = storage.prune_by_manifest(tmp_path, previous, {"a.csv"}, started)
    assert [p.name for p in removed] == ["b.md"] and not (tmp_path / "sub").exists()
    assert foreign == ["my_notes.txt", "old.csv"]
    assert (tmp_path / "my_notes.txt").read_text() == "the user's" and (tmp_path / "old.csv").exists()


def test_pruning_never_follows_an_edited_manifest_or_leaves_the_folder(tmp_path):
    import json

    folder = tmp_path / "statistics"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (folder / "my_notes.txt").write_text("keep")
    (folder / "a.csv").write_text("x")
    (folder / "link.csv").symlink_to(outside)
    storage.write_manifest(folder, [folder / "a.csv"])
    record = json.loads((folder / "manifest.json").read_text())
    record["files"]["my_notes.txt"] = {"sha256": "0" * 64, "size": 4}      # edited: the seal no longer matches
    (folder / "manifest.json").write_text(json.dumps(record))
    assert storage.manifest_files(folder) is None
    future = _time.time() + 100
    removed, _ = storage.prune_by_manifest(folder, storage.manifest_files(folder), set(), future)
    assert removed == [] and (folder / "my_notes.txt").exists()
    # even a list that names them removes nothing outside the folder or through a link
    removed, _ = storage.prune_by_manifest(folder, {"../outside.txt", "link.csv", str(outside)}, set(), future)
    assert removed == [] and outside.read_text() == "keep"


# ------------------------------------------------------------------ the sidecar is sealed with the payload


@pytest.mark.parametrize("kind", ["table", "tensors", "json"])
def test_an_edited_sidecar_is_not_trusted_for_any_artefact_kind(tmp_path, kind):
    """Phase-5 tables, the head screen's tensors and the circuits' JSON all go through the one rule: a
    field of the record edited while the payload stays intact is a damaged artefact (rebuilt)."""
    meta = {"key": "k1", "emotions": ["anger", "joy"], "layers": [0, 1], "ids": ["p12", "p13"]}
    path = tmp_path / {"table": "t.parquet", "tensors": "t.safetensors", "json": "t.bin"}[kind]
    if kind == "table":
        storage.write_table_artifact(path, _pd.DataFrame({"x": [1, 2]}), meta)
        read = lambda: storage.read_table_artifact(path, key="k1")   # noqa: E731
    elif kind == "tensors":
        storage.save_tensors_artifact(path, {"a": _torch.arange(4.0)}, meta)
        read = lambda: storage.load_tensors_artifact(path, key="k1")  # noqa: E731
    else:
        storage.write_artifact(path, storage.json_bytes({"edges": [1, 2]}), meta)
        read = lambda: storage.read_artifact(path, key="k1")          # noqa: E731
    assert read() is not None
    sidecar = storage.sidecar_path(path)
    record = _json.loads(sidecar.read_text())
    for field, value in (("ids", ["p13", "p13"]), ("emotions", ["joy", "anger"]), ("layers", [1, 0])):
        edited = {**record, field: value}
        sidecar.write_text(_json.dumps(edited))
        assert read() is None, field
    sidecar.write_text(_json.dumps({k: v for k, v in record.items() if k != storage.RECORD_CHECKSUM}))
    assert read() is None                     # an unsealed record (an older emocheck's) is rebuilt, not read
    sidecar.write_text(_json.dumps(record))
    assert read() is not None


def test_a_rewrite_from_read_metadata_is_sealed_again(tmp_path):
    path = tmp_path / "s.csv"
    storage.write_table_artifact(path, _pd.DataFrame({"x": [1]}), {"key": "a", "n": 1})
    _, meta = storage.read_artifact(path, key="a")
    storage.write_table_artifact(path, _pd.DataFrame({"x": [1, 2]}), {**meta, "n": 2})
    _, meta2 = storage.read_artifact(path, key="a")
    assert meta2["n"] == 2 and storage.record_is_sealed(meta2)
