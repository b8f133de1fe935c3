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
