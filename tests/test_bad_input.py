"""Bad input gets one clear error, and nothing already cached is lost or corrupted."""
import hashlib

import pytest

from emocheck.representations import cache as activation_cache
from emocheck.representations.cache import cached_activations
from emocheck.dataset import load_emotion_prompts
from emocheck.errors import ConfigError, DatasetError, EmocheckError, ModelUnavailableError
from emocheck.models.registry import load_model
from emocheck.profiles import get_profile
from emocheck.testing import tiny_model

TEXTS = ["Thanks so much for the help!", "Hi there", "I am furious about the late parcel."]
TRIGGERS = ["Thanks so much", "there", "furious"]


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if not p.name.endswith(".lock")}


def test_bad_inputs_leave_the_cache_intact(tmp_path):
    model = tiny_model("llama", n_layers=2)
    calls = []

    def loader():
        calls.append(1)
        return model

    def get(**kw):
        activation_cache.clear_memo()
        args = dict(ids=["a", "b", "c"], texts=TEXTS, triggers=TRIGGERS)
        args.update(kw)
        return cached_activations(loader, model.identity, args["ids"], args["texts"], args["triggers"], tmp_path,
                                  n_layers=2, progress=False, **{k: v for k, v in kw.items()
                                                                 if k not in ("ids", "texts", "triggers")})

    get()
    before = _snapshot(tmp_path)
    bad_csv = tmp_path.parent / "bad.csv"
    bad_csv.write_text("id,emotion,text,trigger,genre,formality,explicitness,topic\n1,neutral,\"unclosed\n")
    errors = [
        (lambda: get(layers=[5]), ConfigError, "layer 5 is out of range"),
        (lambda: get(positions=("first_token",)), ConfigError, "unknown position rule"),
        (lambda: get(triggers=["Thanks so much", "there", "not there"], ids=["x", "y", "z"]), DatasetError,
         "is not in the prompt"),
        (lambda: load_emotion_prompts(bad_csv), DatasetError, "bad.csv"),
        (lambda: load_emotion_prompts(emotions=["nostalgia"]), DatasetError, "unknown emotion"),
        (lambda: load_model("no-such-model"), ModelUnavailableError, "unknown model"),
        (lambda: get_profile("huge"), ConfigError, "unknown profile"),
    ]
    for call, kind, message in errors:
        with pytest.raises(kind, match=message) as info:
            call()
        assert isinstance(info.value, EmocheckError)
        assert "\n" not in str(info.value).strip() or len(str(info.value)) < 400   # one message, not a dump
    assert _snapshot(tmp_path) == before            # nothing changed, nothing half-written
    n_calls = len(calls)
    get()
    assert len(calls) == n_calls                    # and the good entry is still served from the cache


def test_failure_during_extraction_writes_nothing(tmp_path):
    model = tiny_model("llama", n_layers=2)

    class Boom(Exception):
        pass

    def broken_loader():
        raise Boom("model crashed")

    activation_cache.clear_memo()
    with pytest.raises(Boom):
        cached_activations(broken_loader, model.identity, ["a"], ["hello there"], ["there"], tmp_path, n_layers=2,
                           progress=False)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


# ------------------------------------------------------------------ issue 15, finding 4: one test per input

import pandas as _pd
import torch as _torch

from emocheck.representations.extraction import extract_activations


def _acts(tmp_path, ids, texts, triggers, model=None):
    model = model or tiny_model("llama", n_layers=2)
    activation_cache.clear_memo()
    return cached_activations(lambda: model, model.identity, ids, texts, triggers, tmp_path, n_layers=2,
                              progress=False)


def test_empty_prompt_list_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no prompts"):
        _acts(tmp_path, [], [], [])
    with pytest.raises(ConfigError, match="no prompts"):
        extract_activations(tiny_model("llama", n_layers=2), [], None, progress=False)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prompt_longer_than_the_context_is_a_clear_error(tmp_path, family):
    model = tiny_model(family, n_layers=2)
    long_text = "word " * 400   # the tiny models' context is 256 positions
    with pytest.raises(DatasetError, match="context of 256 tokens"):
        extract_activations(model, [long_text, "hi there"], None, progress=False)
    with pytest.raises(DatasetError, match="context"):
        _acts(tmp_path, ["a", "b"], [long_text, "hi there"], ["word", "there"], model=model)


def test_ids_and_texts_of_different_lengths_are_refused_not_cached(tmp_path):
    with pytest.raises(ConfigError, match="2 prompt ids for 3 texts"):
        _acts(tmp_path, ["a", "b"], TEXTS, TRIGGERS)
    with pytest.raises(ConfigError, match="2 triggers for 3 texts"):
        _acts(tmp_path, ["a", "b", "c"], TEXTS, TRIGGERS[:2])
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


def _header():
    return "id,emotion,text,trigger,genre,formality,explicitness,topic\n"


def _rows(extra_text=""):
    return "".join(f"{e}-{i},{e},\"msg {i} {w}{extra_text if i == 0 else ''}\",{w},chat,informal,explicit,x\n"
                   for e, w in (("gratitude", "thanks"), ("neutral", "room")) for i in range(3))


def test_csv_field_over_128_kib_is_read(tmp_path):
    path = tmp_path / "emotion_prompts.csv"
    path.write_text(_header() + _rows(" long" * 40_000), encoding="utf-8")   # ~200 KiB in one field
    df = load_emotion_prompts(path)
    assert len(df) == 6 and df["text"].str.len().max() > 128 * 1024


def test_utf8_bom_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "emotion_prompts.csv"
    path.write_bytes("\ufeff".encode("utf-8") + (_header() + _rows()).encode("utf-8"))
    df = load_emotion_prompts(path)
    assert list(df["id"])[:1] == ["gratitude-0"]


def test_truncated_saved_vectors_are_one_clear_error_in_load_saved_vectors(tiny_vectors_file):
    from emocheck.representations.build import load_saved_vectors

    assert load_saved_vectors(tiny_vectors_file).emotions
    tiny_vectors_file.write_bytes(tiny_vectors_file.read_bytes()[:200])
    with pytest.raises(DatasetError, match="build_representations"):
        load_saved_vectors(tiny_vectors_file)


@pytest.fixture
def tiny_vectors_file(tmp_path):
    from emocheck.representations.build import _save
    from emocheck.representations.vectors import EmotionSubspaces, EmotionVectors
    from emocheck.profiles import Profile
    import os

    os.environ["EMOCHECK_RESULTS_DIR"] = str(tmp_path / "results")
    try:
        meta = {"key": "k", "layers": [0], "emotions": ["anger"], "model": {"name": "tiny"}}
        v = EmotionVectors("tiny", [0], ["anger"], {"last/hook_resid_post/vs_neutral": _torch.ones(1, 1, 8)},
                           {"last/hook_resid_post": _torch.ones(1)}, meta)
        s = EmotionSubspaces("tiny", [0], ["anger"], {"last/hook_resid_post/anger/components": _torch.ones(1, 2, 8)}, meta)
        _save(Profile("unit", ("tiny",), None), "tiny", v, s, meta)
    finally:
        del os.environ["EMOCHECK_RESULTS_DIR"]
    return tmp_path / "results" / "unit" / "emotion_vectors" / "tiny_vectors_token_based.safetensors"


@pytest.mark.parametrize("damaged", ["samples", "part"])
def test_truncated_parquet_is_rebuilt_not_a_crash(tmp_path, damaged):
    from emocheck.patching.experiment import EMOTIONS, run_conditions, sweep_conditions
    from emocheck.patching.engine import generate_patched
    from emocheck.patching.residual import PatchSpec

    class Vectors:
        layers, emotions = [0, 1], list(EMOTIONS)

        def vector(self, emotion, layer, kind="vs_neutral", site="hook_resid_post", position="last"):
            g = _torch.Generator().manual_seed(hash((emotion, layer)) % 1000)
            return _torch.randn(64, generator=g, dtype=_torch.float64)

    m = tiny_model("llama", n_layers=2, seed=1)
    prompts = _pd.DataFrame({"id": ["a", "b"], "text": ["hello there", "a longer prompt"]})
    spec = PatchSpec(layers=(0,), max_new_tokens=4, window=(0, 3))
    conds = sweep_conditions(Vectors(), [1], [1.0], spec.site, 3, prompts["id"].tolist())
    calls = []

    def gen(*a, **k):
        calls.append(1)
        return generate_patched(*a, **k)

    kw = dict(rows_per_batch=4, evaluators=False, progress=False, generate=gen)
    if damaged == "samples":
        first = run_conditions(m, prompts, conds, spec, tmp_path, **kw)
        path = tmp_path / "samples.parquet"
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    else:
        # a run killed after writing its part files, one of them then truncated
        def gen_then_die(*a, **k):
            if len(calls) == 1:
                raise KeyboardInterrupt
            return gen(*a, **k)

        with pytest.raises(KeyboardInterrupt):
            run_conditions(m, prompts, conds, spec, tmp_path, **{**kw, "generate": gen_then_die})
        part = sorted((tmp_path / "parts").glob("*.parquet"))[0]
        part.write_bytes(part.read_bytes()[:40])
        first = None
    n = len(calls)
    again = run_conditions(m, prompts, conds, spec, tmp_path, **kw)
    assert len(calls) > n                             # regenerated, not trusted
    if first is not None:
        assert again.equals(first)
    assert _pd.read_parquet(tmp_path / "samples.parquet").equals(again)
