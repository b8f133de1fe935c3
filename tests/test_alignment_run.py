"""Phase 4 end to end on planted data: the layer search finds the related layer pair, the files are
written (CSV, safetensors, PNG, statistics/k_selection.csv) and read back, and a damaged file is
recomputed, never trusted."""
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from emocheck.alignment import run as run_mod
from emocheck.alignment.analysis import AlignConfig
from emocheck.alignment.synthetic import planted_pair
from emocheck.errors import ConfigError
from emocheck.profiles import get_profile

CFG = AlignConfig(p=12, k_max=3, permutations=39, pairing_draws=19, random_draws=39, heat_permutations=9, bootstrap=20)


@dataclass
class _Side:
    model: str
    layers: list


class FakePaired:
    """Three layers per model; only source layer 1 and target layer 2 are related (a rotation)."""

    def __init__(self, seed=0):
        planted = planted_pair("rotation", n_per_group=60, d_a=24, latent=6, seed=seed)
        rng = np.random.default_rng(seed + 1)
        self.labels, self.train, self.emotions = planted.labels, planted.train, planted.emotions
        self.prompts = pd.DataFrame({"id": [f"p{i}" for i in range(len(self.labels))], "emotion": self.labels})
        noise = lambda: planted_pair("none", n_per_group=60, d_a=24, latent=6, seed=int(rng.integers(1e6))).xb  # noqa: E731
        self._x = {("source", 0): noise(), ("source", 1): planted.xa, ("source", 2): noise(),
                   ("target", 0): noise(), ("target", 1): noise(), ("target", 2): planted.xb}
        self.source, self.target = _Side("src", [0, 1, 2]), _Side("tgt", [0, 1, 2])

    def x(self, side, layer):
        return self._x[(side, layer)]


def _compute(tmp_path, cfg=CFG):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    return run_mod._compute(FakePaired(), "tgt", "src", get_profile("ci"), cfg, "key1", out, False)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("alignment_run")
    mp.setenv("EMOCHECK_RESULTS_DIR", str(root / "results"))
    try:
        yield _compute(root), root / "results"
    finally:
        mp.undo()


def test_run_finds_the_related_layers_and_writes_everything(computed):
    res, results_tmp = computed
    assert (res.layers["source_layer"], res.layers["target_layer"]) == (1, 2)
    for name in [*run_mod.TABLES, "nulls"]:
        assert (res.out_dir / (f"{name}.csv" if name != "nulls" else "nulls.safetensors")).is_file()
    for png in ("layer_pairs.png", "k_curves.png"):
        assert (res.out_dir / png).stat().st_size > 1000
    stats_csv = results_tmp / "ci" / "statistics" / "k_selection.csv"
    ks = pd.read_csv(stats_csv)
    assert set(ks.contrast) == {"vs_neutral", "vs_other"} and set(ks.k) == {1, 2, 3}
    row = res.overlap_row("gratitude", "vs_other", 2)
    assert row.observed > 0.8 and row.label_permuted_p <= 0.05
    assert res.null("gratitude", "vs_other", "label_permuted", 2).shape == (39,)
    v = res.tables["variants"]
    assert set(v["map"]) == {"ridge", "procrustes", "cca"} and set(v.fit_on) == {"neutral", "all"}
    assert set(v.outlier_dims_removed) == {0, 5}
    lp = res.tables["layer_pairs"]
    assert len(lp) == 9 and lp.loc[lp.train_overlap.idxmax(), ["source_layer", "target_layer"]].tolist() == [1, 2]


def test_saved_run_is_read_back_and_a_damaged_file_is_not_trusted(computed):
    res, _ = computed
    back = run_mod._load(res.out_dir, "key1", "tgt", "src", CFG)
    assert back is not None
    pd.testing.assert_frame_equal(back.overlaps, pd.read_csv(res.out_dir / "overlaps.csv"))
    np.testing.assert_allclose(back.null("anger", "vs_neutral", "label_permuted"),
                               res.null("anger", "vs_neutral", "label_permuted"))
    assert run_mod._load(res.out_dir, "other-key", "tgt", "src", CFG) is None
    import shutil

    copy = res.out_dir.parent / "damaged"
    shutil.copytree(res.out_dir, copy)
    (copy / "overlaps.csv").write_text("truncated")
    assert run_mod._load(copy, "key1", "tgt", "src", CFG) is None


def test_same_inputs_same_numbers(computed, tmp_path, results_tmp):
    a, _ = computed
    b = _compute(tmp_path / "b")
    pd.testing.assert_frame_equal(a.overlaps, b.overlaps)
    pd.testing.assert_frame_equal(a.tables["k_selection"], b.tables["k_selection"])


def test_bad_configuration_fails_with_one_clear_error():
    with pytest.raises(ConfigError, match="fit_on"):
        AlignConfig(fit_on="emotion")
    with pytest.raises(ConfigError, match="k_claim"):
        AlignConfig(k_claim=11, k_max=10)
    with pytest.raises(ConfigError, match="two different models"):
        run_mod.run_alignment("a", "a", get_profile("ci"))
    assert replace(CFG, map_kind="cca").map_kind == "cca"


def test_k_selection_csv_keeps_other_pairs(computed, results_tmp):
    res, _ = computed
    ks = res.tables["k_selection"]
    run_mod._merge_statistics(get_profile("ci"), "tgt", "src", "last", ks)
    run_mod._merge_statistics(get_profile("ci"), "tgt", "third", "last", ks.assign(source="third"))
    run_mod._merge_statistics(get_profile("ci"), "tgt", "src", "last", ks)      # replaces, not appends
    table = pd.read_csv(results_tmp / "ci" / "statistics" / "k_selection.csv")
    assert sorted(table.source.unique()) == ["src", "third"]
    assert len(table) == 2 * len(ks) and (table.position == "last").all()


def test_k_selection_csv_replaces_rows_of_an_older_layout(computed, results_tmp):
    res, _ = computed
    ks = res.tables["k_selection"]
    path = results_tmp / "ci" / "statistics" / "k_selection.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    ks.drop(columns=["position"], errors="ignore").to_csv(path, index=False)     # no position column
    run_mod._merge_statistics(get_profile("ci"), "tgt", "src", "last", ks)
    assert len(pd.read_csv(path)) == len(ks)


@pytest.mark.parametrize("edit", ["layers", "files", "config"])
def test_an_edited_summary_is_not_trusted(computed, edit):
    """summary.json says which layers were aligned: an edit is detected like a damaged table."""
    import json
    import shutil

    res, _ = computed
    copy = res.out_dir.parent / f"edited-{edit}"
    shutil.copytree(res.out_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    if edit == "layers":
        summary["layers"]["source_layer"], summary["layers"]["target_layer"] = 0, 0
    elif edit == "files":
        del summary["files"]["k_selection.csv"]      # that table would no longer be checked
    else:
        summary["config"]["p"] = 99
    (copy / "summary.json").write_text(json.dumps(summary))
    assert run_mod._load(copy, "key1", "tgt", "src", CFG) is None


def test_a_cached_run_writes_its_k_selection_rows_again(results_tmp, monkeypatch):
    """statistics/k_selection.csv is an output of phase 4: present after a warm run too (the cached run
    is read back, not recomputed, and its rows are written to the session's statistics)."""
    monkeypatch.setattr(run_mod, "paired_activations", lambda *a, **k: _KeyedPaired())
    profile = get_profile("ci")
    cold = run_mod.run_alignment("tgt", "src", profile, CFG, progress=False)
    stats_csv = results_tmp / "ci" / "statistics" / "k_selection.csv"
    stats_csv.unlink()                                   # as a pruning of an earlier session's files did
    monkeypatch.setattr(run_mod, "_compute", lambda *a, **k: pytest.fail("recomputed a cached run"))
    run_mod.clear_memo()
    run_mod.run_alignment("tgt", "src", profile, CFG, progress=False)
    table = pd.read_csv(stats_csv)
    assert len(table) == len(cold.tables["k_selection"]) and set(table.source) == {"src"}


class _KeyedPaired(FakePaired):
    def __init__(self):
        super().__init__()
        for side, key in ((self.source, "s"), (self.target, "t")):
            side.activations = type("Acts", (), {"meta": {"key": key}})()
