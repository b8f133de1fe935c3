import pandas as pd
import pytest

from emocheck.dataset import (EMOTION_COLUMNS, load_emotion_prompts, load_generation_prompts, split, subsample)
from emocheck.errors import DatasetError

HEADER = ",".join(EMOTION_COLUMNS)


def _write(tmp_path, body, name="p.csv"):
    p = tmp_path / name
    p.write_text(HEADER + "\n" + body, encoding="utf-8")
    return p


def test_shipped_dataset_is_valid_and_large_enough():
    df = load_emotion_prompts()
    counts = df["emotion"].value_counts()
    for e in ("gratitude", "anger", "apology", "neutral"):
        assert counts[e] >= 200, counts
    assert all(t in x for t, x in zip(df["trigger"], df["text"]))
    gen = load_generation_prompts()
    assert len(gen) >= 200 and gen["id"].is_unique


def test_trigger_not_in_text_names_the_row(tmp_path):
    p = _write(tmp_path, 'a1,gratitude,Thanks a lot,Thanks,email,formal,explicit,delivery\n'
                         'n1,neutral,The box is here,the parcel,email,formal,none,delivery\n')
    with pytest.raises(DatasetError, match=r"line 3 \(id n1\): trigger 'the parcel' is not a substring"):
        load_emotion_prompts(p)


def test_malformed_csv_names_the_line(tmp_path):
    p = _write(tmp_path, 'a1,gratitude,Thanks, a lot,Thanks,email,formal,explicit,delivery\n')
    with pytest.raises(DatasetError, match=r"line 2: 9 fields where the header has 8"):
        load_emotion_prompts(p)


def test_missing_column_and_duplicate_id(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("id,text\n1,hi\n")
    with pytest.raises(DatasetError, match="lacks column"):
        load_emotion_prompts(p)
    p = _write(tmp_path, 'a,neutral,one two,one,email,formal,none,x\na,neutral,three four,three,email,formal,none,x\n')
    with pytest.raises(DatasetError, match="duplicate id"):
        load_emotion_prompts(p)


def test_bad_emotion_name_and_missing_neutral(tmp_path):
    p = _write(tmp_path, 'a,Gratitude!,thanks so much,thanks,email,formal,explicit,x\n')
    with pytest.raises(DatasetError, match="lowercase word"):
        load_emotion_prompts(p)
    p = _write(tmp_path, 'a,gratitude,thanks so much,thanks,email,formal,explicit,x\n')
    with pytest.raises(DatasetError, match="no 'neutral' rows"):
        load_emotion_prompts(p)


def test_unknown_emotion_filter_is_clear():
    with pytest.raises(DatasetError, match="unknown emotion"):
        load_emotion_prompts(emotions=["joyfulness"])


def test_adding_an_emotion_is_adding_rows(tmp_path):
    p = _write(tmp_path, 'a,pride,I did it all myself,did it all myself,chat,informal,implicit,x\n'
                         'n,neutral,The form is on the desk,is on the desk,chat,informal,none,x\n')
    assert set(load_emotion_prompts(p)["emotion"]) == {"pride", "neutral"}


def test_split_is_stable_stratified_and_seeded():
    df = load_emotion_prompts()
    s1, s2 = split(df, 0.3, seed=0), split(df, 0.3, seed=0)
    assert (s1 == s2).all()
    assert (split(df, 0.3, seed=1) != s1).any()
    frac = (s1 == "held_out").groupby(df["emotion"]).mean()
    assert ((frac > 0.25) & (frac < 0.35)).all()
    # Adding rows never moves existing prompts between splits.
    extra = pd.DataFrame([{**df.iloc[0].to_dict(), "id": "zz-new", "text": "new"}])
    s3 = split(pd.concat([df, extra], ignore_index=True), 0.3, seed=0)
    assert (s3.iloc[: len(df)].to_numpy() == s1.to_numpy()).all()


def test_subsample_takes_n_per_emotion():
    df = subsample(load_emotion_prompts(), 10, seed=0)
    assert (df["emotion"].value_counts() == 10).all()
