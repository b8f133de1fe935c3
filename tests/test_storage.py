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
