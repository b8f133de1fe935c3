"""Hash split of the generation prompts, stratified by topic and genre."""
import pandas as pd
import pytest

from emocheck.dataset import load_generation_prompts
from emocheck.errors import ConfigError
from emocheck.patching.splits import balance, split_prompts, stratified_order


def _prompts(n_topics=5, per_topic=6, genres=("a", "b", "c")):
    rows = [{"id": f"p{t}-{k}", "text": "x", "topic": f"t{t}", "genre": genres[(t + k) % len(genres)]}
            for t in range(n_topics) for k in range(per_topic)]
    return pd.DataFrame(rows)


def test_disjoint_spread_and_independent_of_file_order():
    df = _prompts()
    judged, tune = split_prompts(df, 12, 5, seed=0)
    assert not set(judged["id"]) & set(tune["id"])
    assert tune["topic"].nunique() == 5                      # one tuning prompt per topic
    assert judged["topic"].value_counts().max() - judged["topic"].value_counts().min() <= 1
    shuffled = df.sample(frac=1, random_state=3)
    j2, t2 = split_prompts(shuffled, 12, 5, seed=0)
    assert list(j2["id"]) == list(judged["id"]) and list(t2["id"]) == list(tune["id"])
    assert list(split_prompts(df, 12, 5, seed=1)[0]["id"]) != list(judged["id"])


def test_genres_balanced_within_the_order():
    order = stratified_order(_prompts(), seed=0)
    genre = dict(zip(_prompts()["id"], _prompts()["genre"]))
    first = pd.Series([genre[i] for i in order[:9]]).value_counts()
    assert first.max() - first.min() <= 1


def test_real_file_ci_split():
    df = load_generation_prompts()
    judged, tune = split_prompts(df, 48, 8, seed=0)
    assert judged["topic"].nunique() == 20 and tune["topic"].nunique() == 8
    assert max(balance(judged, "topic").values()) <= 3 and judged["genre"].nunique() == 9


def test_errors():
    with pytest.raises(ConfigError, match="judged"):
        split_prompts(_prompts(), 40, 5)
    with pytest.raises(ConfigError, match="topic"):
        stratified_order(pd.DataFrame({"id": ["a"], "genre": ["x"]}))
