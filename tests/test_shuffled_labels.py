"""The label-shuffled dataset (emocheck.shuffled_labels): every label group holds the same mix of real
emotions, the prompts themselves are unchanged, and it loads as a dataset."""
import pandas as pd
import pytest

from emocheck.dataset import load_emotion_prompts
from emocheck.errors import DatasetError
from emocheck.shuffled_labels import main, mix_table, shuffle_within_emotions, write_shuffled


@pytest.fixture(scope="module")
def prompts():
    return load_emotion_prompts()


def test_every_group_holds_the_same_mix_of_real_emotions(prompts):
    out = shuffle_within_emotions(prompts, seed=0)
    mix = mix_table(out)
    labels = sorted(prompts["emotion"].unique())
    assert list(mix.index) == labels and list(mix.columns) == labels
    # each real emotion's 210 prompts dealt 52 or 53 to every label, and every label keeps 210 prompts
    assert mix.to_numpy().min() >= 52 and mix.to_numpy().max() <= 53
    assert (mix.sum(axis=1) == prompts["emotion"].value_counts().sort_index()).all()
    # only the label moved
    merged = out.merge(prompts, on="id", suffixes=("", "_orig"))
    for col in ("text", "trigger", "genre", "topic"):
        assert (merged[col] == merged[f"{col}_orig"]).all()
    assert (merged["true_emotion"] == merged["emotion_orig"]).all()
    assert (merged["emotion"] != merged["emotion_orig"]).mean() > 0.7


def test_the_seed_decides_the_shuffle(prompts):
    a, b, c = (shuffle_within_emotions(prompts, seed=s)["emotion"] for s in (1, 1, 2))
    assert (a == b).all() and (a != c).any()


def test_keep_neutral_deals_out_only_the_emotions(prompts):
    mix = mix_table(shuffle_within_emotions(prompts, seed=0, keep_neutral=True))
    assert mix.loc["neutral", "neutral"] == 210 and mix.loc["neutral"].sum() == 210
    assert mix.loc["neutral"].drop("neutral").sum() == 0 and mix["neutral"].drop("neutral").sum() == 0
    assert (mix.drop(index="neutral", columns="neutral").to_numpy() == 70).all()


def test_the_cli_writes_a_dataset_that_loads(tmp_path, capsys, prompts):
    path = tmp_path / "shuffled.csv"
    assert main(["--seed", "3", "--out", str(path)]) == 0
    back = load_emotion_prompts(path)
    assert len(back) == len(prompts) and "true_emotion" in back.columns
    assert (back["emotion"] == shuffle_within_emotions(prompts, seed=3)["emotion"]).all()
    assert "--emocheck-dataset" in capsys.readouterr().out
    assert main(["--seed", "0", "--out", str(tmp_path / "x.parquet")]) == 2
    with pytest.raises(DatasetError, match="already has a 'true_emotion'"):
        write_shuffled(path, tmp_path / "again.csv", seed=0)
