"""Datasets as a parameter: JSONL and CSV with only text + emotion, optional trigger / id / metadata,
any emotion set with neutral, one clear error per bad file, and a dataset hash in the cache keys."""
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from emocheck.dataset import (MissingTriggerWarning, dataset_hash, emotions_of, load_emotion_prompts,
                              load_generation_prompts, text_id)
from emocheck.errors import DatasetError

OTHER = Path(__file__).parent / "data" / "other.jsonl"


def _jsonl(tmp_path, rows, name="p.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return p


def test_other_jsonl_loads_with_hash_ids_and_no_triggers():
    with pytest.warns(MissingTriggerWarning, match="trigger_last' reads the last token"):
        df = load_emotion_prompts(OTHER)
    assert emotions_of(df) == ["anger", "apology", "gratitude"]
    assert df["emotion"].value_counts().min() >= 40
    assert not df["has_trigger"].any()
    assert (df["trigger"] == df["text"]).all()          # trigger span = whole text -> last token
    assert df["id"].is_unique and df["id"].str.match(r"^t[0-9a-f]{12}$").all()
    assert df.loc[0, "id"] == text_id(df.loc[0, "text"])
    assert (df["explicitness"] == "").all()


def test_ids_do_not_depend_on_file_order(tmp_path):
    rows = [{"text": "Thanks a lot.", "emotion": "gratitude"}, {"text": "The box is here.", "emotion": "neutral"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingTriggerWarning)
        a = load_emotion_prompts(_jsonl(tmp_path, rows, "a.jsonl"))
        b = load_emotion_prompts(_jsonl(tmp_path, rows[::-1], "b.jsonl"))
    assert dict(zip(a["text"], a["id"])) == dict(zip(b["text"], b["id"]))


def test_any_emotion_set_and_metadata_columns(tmp_path):
    rows = [{"text": "I am scared of the dark.", "emotion": "fear", "trigger": "scared", "source": "me", "n": 3},
            {"text": "The lamp is on the desk.", "emotion": "neutral", "trigger": "lamp", "source": "me", "n": 4},
            {"text": "What a lovely surprise!", "emotion": "joy", "trigger": "lovely", "source": "you", "n": 5}]
    df = load_emotion_prompts(_jsonl(tmp_path, rows))
    assert emotions_of(df) == ["fear", "joy"]
    assert df["has_trigger"].all()
    assert list(df["source"]) == ["me", "me", "you"] and list(df["n"]) == ["3", "4", "5"]


def test_csv_with_only_text_and_emotion(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("text,emotion\nThanks so much.,gratitude\nThe box is here.,neutral\n", encoding="utf-8")
    with pytest.warns(MissingTriggerWarning):
        df = load_emotion_prompts(p)
    assert list(df["emotion"]) == ["gratitude", "neutral"]


@pytest.mark.parametrize("lines, message", [
    (['{"text": "Thanks.", "emotion": "gratitude"}', '{"text": "oops", "emotion": '], r"line 2: not valid JSON"),
    (['{"text": "Thanks.", "emotion": "gratitude"}', '["a", "b"]'], r"line 2: a JSON list, not an object"),
    (['{"text": "Thanks.", "emotion": "gratitude"}', '{"text": "no label"}'], r"line 2: lacks key\(s\) emotion"),
    (['{"text": "Thanks.", "emotion": "gratitude"}', '{"text": "Hi.", "emotion": "Neutral"}'], r"line 2 .*lowercase word"),
    (['{"text": "Thanks.", "emotion": "gratitude"}', '{"text": "Thanks.", "emotion": "neutral"}'], r"line 2 .*duplicate text"),
    (['{"text": "Thanks.", "emotion": "gratitude", "trigger": "Thanks"}', '{"text": "Hi.", "emotion": "neutral"}'],
     r"line 2 .*empty trigger while other rows have one"),
    (['{"text": "Thanks.", "emotion": "gratitude", "trigger": "merci"}'], r"line 1 .*trigger 'merci' is not a substring"),
    (['{"text": "Thanks.", "emotion": "gratitude"}'], r"no 'neutral' rows"),
    (['{"text": "Hi.", "emotion": "neutral"}'], r"only neutral rows"),
    (['{"text": "Hi.", "emotion": "neutral", "meta": {"a": 1}}'], r"line 1: 'meta' is a JSON dict"),
])
def test_bad_jsonl_names_file_line_and_problem(tmp_path, lines, message):
    p = _jsonl(tmp_path, lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingTriggerWarning)
        with pytest.raises(DatasetError, match=message) as info:
            load_emotion_prompts(p)
    assert str(p) in str(info.value)


def test_dataset_hash_sees_labels_and_metadata(tmp_path):
    rows = [{"text": "Thanks a lot.", "emotion": "gratitude", "trigger": "Thanks"},
            {"text": "The box is here.", "emotion": "neutral", "trigger": "box"}]
    a = load_emotion_prompts(_jsonl(tmp_path, rows, "a.jsonl"))
    b = load_emotion_prompts(_jsonl(tmp_path, [dict(rows[0], emotion="joy"), rows[1]], "b.jsonl"))
    c = load_emotion_prompts(_jsonl(tmp_path, [dict(rows[0], topic="x"), rows[1]], "c.jsonl"))
    again = load_emotion_prompts(_jsonl(tmp_path, rows, "again.jsonl"))
    assert dataset_hash(a) == dataset_hash(again)
    assert len({dataset_hash(a), dataset_hash(b), dataset_hash(c)}) == 3


def test_generation_prompts_from_jsonl(tmp_path):
    p = _jsonl(tmp_path, [{"text": "The parcel arrived and"}, {"text": "Our meeting moved to", "topic": "work"}])
    df = load_generation_prompts(p)
    assert list(df.columns) == ["id", "text", "genre", "topic"]
    assert df["id"].str.startswith("t").all() and list(df["topic"]) == ["", "work"]
    with pytest.raises(DatasetError, match=r"line 1: lacks key\(s\) text"):
        load_generation_prompts(_jsonl(tmp_path, [{"prompt": "x"}], "bad.jsonl"))


def test_env_var_selects_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCHECK_DATASET", str(OTHER))
    with pytest.warns(MissingTriggerWarning):
        assert len(load_emotion_prompts()) == 192
