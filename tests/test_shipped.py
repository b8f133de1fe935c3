"""Shipped files (evaluator heads, prompt tables, evaluator data) are checked against the digests
recorded in data/SHIPPED.sha256: damage gives one error naming the file and how to restore it."""
import shutil

import pytest

from emocheck import shipped
from emocheck.errors import EmocheckError, ModelUnavailableError
from emocheck.evaluators.heads import LinearHead


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A copy of the repository's data/ with its digest list (never damage the checkout itself)."""
    copy = tmp_path / "data"
    shutil.copytree(shipped.project_data_dir(), copy)
    monkeypatch.setenv("EMOCHECK_DATA_DIR", str(copy))
    monkeypatch.setenv("EMOCHECK_EVALUATOR_DATA", str(copy / "evaluators"))
    monkeypatch.delenv("EMOCHECK_DATASET", raising=False)
    return copy


def test_every_shipped_file_matches_its_recorded_digest():
    """Changing a shipped file without recording its digest (python -m emocheck.shipped --record) fails here."""
    files = shipped.shipped_files()
    assert len(files) >= 13
    for path in files:
        assert shipped.verify_shipped(path) == path.read_bytes(), path


def _flip_one_bit(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["bit", "truncate"])
def test_a_damaged_evaluator_head_is_named_with_how_to_restore_it(data_copy, damage):
    head = data_copy / "evaluators" / "heads" / "emotion.safetensors"
    assert LinearHead.load(head).labels
    if damage == "bit":
        _flip_one_bit(head)                                  # in the weights: would change scores silently
    else:
        head.write_bytes(head.read_bytes()[:1000])           # raised a raw SafetensorError before
    with pytest.raises(shipped.ShippedFileError) as err:
        LinearHead.load(head)
    message = str(err.value)
    assert "emotion.safetensors" in message and "git checkout --" in message and "fresh checkout" in message
    assert isinstance(err.value, EmocheckError)


def test_the_evaluator_refuses_a_damaged_head_at_construction(data_copy):
    from emocheck.evaluators.minilm import SentimentEvaluator

    _flip_one_bit(data_copy / "evaluators" / "heads" / "sentiment.safetensors")
    with pytest.raises(shipped.ShippedFileError, match="sentiment.safetensors is damaged"):
        SentimentEvaluator()


@pytest.mark.parametrize("damage", ["bit", "truncate"])
def test_a_damaged_prompt_table_is_named_with_how_to_restore_it(data_copy, damage):
    from emocheck.dataset import load_emotion_prompts

    table = data_copy / "emotion_prompts.csv"
    assert len(load_emotion_prompts()) > 100
    data = table.read_bytes()
    if damage == "bit":
        idx = data.index(b"furious") if b"furious" in data else len(data) // 2
        _flip_one_bit(table, idx)                            # a letter of a prompt changes; the file still parses
    else:
        table.write_bytes(data[: len(data) // 2].rsplit(b"\n", 1)[0] + b"\n")   # whole rows lost
    with pytest.raises(shipped.ShippedFileError, match="emotion_prompts.csv is damaged"):
        load_emotion_prompts()


def test_an_unlisted_truncated_head_gives_one_clear_error(tmp_path):
    src = shipped.project_data_dir() / "evaluators" / "heads" / "politeness.safetensors"
    head = tmp_path / "politeness.safetensors"                # no digest list above it: not a shipped file
    head.write_bytes(src.read_bytes()[:500])
    with pytest.raises(ModelUnavailableError, match="not a readable head file"):
        LinearHead.load(head)


def test_a_users_own_files_are_not_checked(tmp_path):
    own = tmp_path / "prompts.csv"
    own.write_text("text,emotion\nhi,neutral\n")
    assert shipped.verify_shipped(own) is None


def test_record_then_check_from_the_command_line(data_copy, capsys):
    assert shipped.main(["--data-dir", str(data_copy)]) == 0
    _flip_one_bit(data_copy / "evaluators" / "validation.csv")
    assert shipped.main(["--data-dir", str(data_copy)]) == 1
    assert "validation.csv is damaged" in capsys.readouterr().out
    shipped.main(["--data-dir", str(data_copy), "--record"])
    assert shipped.main(["--data-dir", str(data_copy)]) == 0
