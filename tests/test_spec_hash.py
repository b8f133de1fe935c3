"""Unit tests of emocheck.plugin.spec_hash: canonical form, code closure, data detection, diffs."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from emocheck.errors import ConfigError
from emocheck.plugin import spec_hash as sh


def test_canonical_json_is_order_free_and_refuses_nan():
    a = {"b": [1, 2.5, "x"], "a": {"d": None, "c": True}}
    b = {"a": {"c": True, "d": None}, "b": [1, 2.5, "x"]}
    assert sh.canonical_json(a) == sh.canonical_json(b) == '{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}'
    assert sh.spec_hash(a) == sh.spec_hash(b) and len(sh.spec_hash(a)) == 64
    assert sh.spec_hash(a) != sh.spec_hash({**a, "e": 1})
    with pytest.raises(ValueError):
        sh.canonical_json({"x": float("nan")})


def test_design_marker_takes_plain_data_only():
    mark = sh.design(controls={"random_directions": 20}, position="last", data=["b.csv", "a.csv"])
    assert mark.mark.name == sh.DESIGN_MARKER
    assert mark.mark.kwargs == {"controls": {"random_directions": 20}, "position": "last", "data": ["a.csv", "b.csv"]}
    with pytest.raises(ConfigError, match="not plain data"):
        sh.design(controls={"k": object()})
    with pytest.raises(ConfigError, match="not a finite number"):
        sh.design(threshold=float("inf"))


def test_flatten_and_diff_name_the_changed_fields():
    old = {"claim": {"min_d": 0.5, "alpha": 0.05}, "data": {"a.csv": "h1"}, "code": {"emocheck/stats/core.py": "x"}}
    new = {"claim": {"min_d": 0.8, "alpha": 0.05}, "data": {"a.csv": "h2", "b.csv": "h3"}, "code": {"emocheck/stats/core.py": "x"}}
    assert sh.diff_specs(old, new) == [
        {"field": "claim.min_d", "from": 0.5, "to": 0.8},
        {"field": "data.a.csv", "from": "h1", "to": "h2"},
        {"field": "data.b.csv", "from": None, "to": "h3"},
    ]
    assert sh.diff_specs(old, old) == []


def test_family_hash_depends_on_members_and_their_specs():
    h = sh.family_hash({"a": "1", "b": "2"})
    assert h == sh.family_hash({"b": "2", "a": "1"})
    assert h != sh.family_hash({"a": "1"}) and h != sh.family_hash({"a": "1", "b": "3"})


def _fake_emocheck_module(tmp_path, monkeypatch, body: str):
    """A module importable as ``emocheck._spec_hash_fake`` whose source file lives in tmp_path."""
    import emocheck

    pkg_dir = tmp_path / "fakepkg"
    pkg_dir.mkdir(exist_ok=True)
    path = pkg_dir / "_spec_hash_fake.py"
    path.write_text(textwrap.dedent(body))
    monkeypatch.setattr(emocheck, "__path__", [*emocheck.__path__, str(pkg_dir)])
    sys.modules.pop("emocheck._spec_hash_fake", None)
    importlib.invalidate_caches()
    mod = importlib.import_module("emocheck._spec_hash_fake")
    monkeypatch.setitem(sys.modules, "emocheck._spec_hash_fake", mod)
    return mod, path


def test_code_units_follow_helpers_constants_and_emocheck_modules(tmp_path, monkeypatch):
    fake, fake_path = _fake_emocheck_module(tmp_path, monkeypatch, """
        from emocheck.errors import ConfigError

        def analyse(x):
            return x + 1
    """)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "study_mod.py").write_text(textwrap.dedent("""
        from emocheck._spec_hash_fake import analyse
        EMOTIONS = ["anger", "joy"]
        UNUSED = 3

        def _helper(v):
            return analyse(v) * len(EMOTIONS)

        def test_claim():
            return _helper(2)
    """))
    monkeypatch.syspath_prepend(str(project))
    mod = importlib.import_module("study_mod")
    units, sources = sh.code_units([mod.test_claim], project.resolve())
    assert {"study_mod:test_claim", "study_mod:_helper"} <= set(units)
    assert units["study_mod:EMOTIONS"] == ["anger", "joy"] and "study_mod:UNUSED" not in units
    fake_key = next(k for k in units if "_spec_hash_fake" in k)
    assert "emocheck/errors.py" in units  # reached through the fake module's own import
    assert not any(k.startswith("emocheck/plugin/") for k in units)  # the harness is not analysis code
    assert any("def analyse" in s for s in sources)

    # editing the emocheck module the claim reaches changes its unit, and only that one
    fake_path.write_text(fake_path.read_text().replace("x + 1", "x + 2"))
    units2, _ = sh.code_units([mod.test_claim], project.resolve())
    assert [k for k in units if units[k] != units2.get(k)] == [fake_key]


def test_code_units_read_each_function_once_and_a_reloaded_one_again(tmp_path, monkeypatch):
    project = tmp_path / "proj_memo"
    project.mkdir()
    path = project / "memo_study.py"
    path.write_text("from json import dumps\n\ndef _helper(v):\n    return dumps(v + 1)\n\ndef test_a():\n    return _helper(1)\n\n"
                    "def test_b():\n    return _helper(2)\n")
    monkeypatch.syspath_prepend(str(project))
    mod = importlib.import_module("memo_study")
    reads = []
    real = sh._source
    monkeypatch.setattr(sh, "_source", lambda obj: reads.append(obj.__name__) or real(obj))
    first, _ = sh.code_units([mod.test_a], project.resolve())
    again, _ = sh.code_units([mod.test_a], project.resolve())
    other, _ = sh.code_units([mod.test_b], project.resolve())
    assert first == again and other["memo_study:_helper"] == first["memo_study:_helper"]
    # each object's source read once, and none outside the closure (json.dumps, which the helper reaches)
    assert sorted(reads) == ["_helper", "test_a", "test_b"]
    # an edited and reloaded module has new function objects: they are read again, and the unit moves
    path.write_text(path.read_text().replace("v + 1", "v + 3"))
    importlib.invalidate_caches()
    sys.modules.pop("memo_study")
    mod2 = importlib.import_module("memo_study")
    edited, _ = sh.code_units([mod2.test_a], project.resolve())
    assert edited["memo_study:_helper"] != first["memo_study:_helper"]
    assert edited["memo_study:test_a"] == first["memo_study:test_a"]
    sys.modules.pop("memo_study")


def test_data_used_by_name_else_everything():
    available = ["a.csv", "evaluators/labels.json", "b.csv"]
    assert sh.data_used(['path = data_dir() / "a.csv"'], available) == ["a.csv"]
    assert sh.data_used(["json.load(open('labels.json'))"], available) == ["evaluators/labels.json"]
    assert sh.data_used(["no files named here"], available) == available  # conservative


def test_data_files_skip_docs_hidden_and_locks(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.csv", "README.md", ".hidden", "sub/b.json", "a.csv.lock"):
        (tmp_path / name).write_text("x")
    assert sh.data_files(tmp_path) == ["a.csv", "sub/b.json"]
    hashes = sh.data_hashes(tmp_path, ["a.csv", "gone.csv"])
    assert hashes["gone.csv"] == "missing" and len(hashes["a.csv"]) == 64
