"""Fault injection: SIGKILL at random points of every kind of write, concurrent readers and writers of
every cached artefact, and the list of bad inputs (issue 15). Fast (tiny models, forked processes).

The counts (kills, rounds, served reads, wrong answers) are printed with `-s` and written to
`$EMOCHECK_FAULT_REPORT` when that is set; every run asserts zero trusted corrupt entries and zero
wrong answers.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emocheck import storage
from emocheck.plugin import report as rep
from emocheck.profiles import Profile
from emocheck.representations import build
from emocheck.representations import cache as activation_cache
from emocheck.representations.vectors import EmotionSubspaces, EmotionVectors

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401 - imported before forking, so children do not pay for it

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks processes (POSIX only)")

CTX = mp.get_context("fork") if hasattr(os, "fork") else None
COUNTS: dict[str, dict] = {}
# Default: a fast run (5 to 10 kills per kind in about 3 s, 2 s of contention). A longer campaign for
# a closing note: EMOCHECK_FAULT_KILLS=50 EMOCHECK_FAULT_SECONDS=10 pytest tests/test_fault_injection.py -s
KILLS = int(os.environ["EMOCHECK_FAULT_KILLS"]) if os.environ.get("EMOCHECK_FAULT_KILLS") else None
SECONDS = float(os.environ.get("EMOCHECK_FAULT_SECONDS") or 2.0)
KEYS = [f"k{i}" for i in range(3)]
PROFILE = Profile(name="fault", models=("tiny",), prompts_per_emotion=None)
TEXTS = ["Thanks so much for the help!", "Hi there", "I am furious about the late parcel.", "Sorry, my fault."]
TRIGGERS = ["Thanks so much", "there", "furious", "Sorry"]


def _record(name: str, **counts) -> None:
    COUNTS[name] = counts
    print(f"\n[fault-injection] {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    out = os.environ.get("EMOCHECK_FAULT_REPORT")
    if out:
        path = Path(out)
        with storage.file_lock(path):   # xdist workers add their parts to one file
            data = json.loads(path.read_text()) if path.exists() else {}
            data[name] = counts
            storage.atomic_write_json(path, data)


# ----------------------------------------------------------------------------------------- artefacts
# Each kind: write(folder, key) stores the artefact for `key`; read(folder, key) returns what a
# consumer would be served (None = rebuild); expected(key) is the right answer.


def _tensor_for(key: str, shape) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(key[1:]) + 1)
    return torch.randn(*shape, generator=gen)


def _vectors_for(key: str):
    layers, emos = list(range(24)), ["anger", "gratitude", "remorse"]
    meta = {"key": key, "layers": layers, "emotions": emos, "model": {"name": "tiny"}}
    vt = {"last/hook_resid_post/vs_neutral": _tensor_for(key, (24, 3, 1024))}
    norms = {"last/hook_resid_post": _tensor_for(key, (24,))}
    st = {f"last/hook_resid_post/{e}/components": _tensor_for(key, (24, 10, 1024)) + i for i, e in enumerate(emos)}
    return (EmotionVectors("tiny", layers, emos, vt, norms, meta), EmotionSubspaces("tiny", layers, emos, st, meta))


def vectors_write(folder, key):
    v, s = _vectors_for(key)
    build._save(PROFILE, "tiny", v, s, v.meta)


def vectors_read(folder, key):
    got = build._load_saved(PROFILE, "tiny", key)
    if got is None:
        return None
    v, s = got
    return {**{f"v/{k}": t for k, t in v.tensors.items()}, **{f"n/{k}": t for k, t in v.neutral_norm.items()},
            **{f"s/{k}": t for k, t in s.tensors.items()}}


def vectors_expected(key):
    v, s = _vectors_for(key)
    return {**{f"v/{k}": t for k, t in v.tensors.items()}, **{f"n/{k}": t for k, t in v.neutral_norm.items()},
            **{f"s/{k}": t for k, t in s.tensors.items()}}


def _table_for(key: str) -> pd.DataFrame:
    rng = np.random.default_rng(int(key[1:]))
    n = 20_000
    return pd.DataFrame({"sample_id": [f"{key}-{i}" for i in range(n)], "score": rng.normal(size=n),
                         "text": [f"text {key} {i}" for i in range(n)]})


def table_write(folder, key):
    storage.write_table_artifact(Path(folder) / "samples.parquet", _table_for(key), {"key": key})


def table_read(folder, key):
    return storage.read_table_artifact(Path(folder) / "samples.parquet", key=key)


_TINY = None


def _tiny():
    global _TINY
    if _TINY is None:
        from emocheck.testing import tiny_model

        _TINY = tiny_model("llama", n_layers=2)
    return _TINY


def _ids(key):
    return [f"{key}-{i}" for i in range(len(TEXTS))]


def activations_write(folder, key, force=True):
    tiny = _tiny()
    activation_cache.clear_memo()
    if force:   # a rebuild: drop the record so the entry is extracted and written again
        k = activation_cache.activation_key(tiny.identity, _ids(key), TEXTS, TRIGGERS,
                                            ("trigger_last", "last", "mean"), [0, 1],
                                            ("hook_resid_pre", "hook_resid_post"))
        (Path(folder) / f"{k}.json").unlink(missing_ok=True)
    activation_cache.cached_activations(tiny, tiny.identity, _ids(key), TEXTS, TRIGGERS, folder, n_layers=2,
                                        progress=False)


def activations_read(folder, key):
    tiny = _tiny()
    activation_cache.clear_memo()
    k = activation_cache.activation_key(tiny.identity, _ids(key), TEXTS, TRIGGERS, ("trigger_last", "last", "mean"),
                                        [0, 1], ("hook_resid_pre", "hook_resid_post"))
    found = activation_cache._verify_and_load(Path(folder) / f"{k}.safetensors", Path(folder) / f"{k}.json")
    return None if found is None else found[0]


def activations_serve(folder, key):
    """What a consumer gets: cached_activations (reads, or rebuilds a missing/damaged entry)."""
    tiny = _tiny()
    activation_cache.clear_memo()
    return dict(activation_cache.cached_activations(tiny, tiny.identity, _ids(key), TEXTS, TRIGGERS, folder,
                                                    n_layers=2, progress=False).tensors)


_ACT_EXPECTED: dict = {}


def activations_expected(key):
    if key not in _ACT_EXPECTED:
        from emocheck.representations.extraction import extract_activations

        acts = extract_activations(_tiny(), TEXTS, TRIGGERS, positions=("trigger_last", "last", "mean"), layers=[0, 1],
                                   progress=False)
        _ACT_EXPECTED[key] = {f"{p}/{n}": t for p, d in acts.items() for n, t in d.items()}
    return _ACT_EXPECTED[key]


def _stat_results(key):
    from emocheck import stats

    def make_result(claim_id, family, size, t, c):
        comp = stats.compare(t, c, paired=False, alternative="greater", min_d=0.0)
        return {"claim_id": claim_id, "short_id": claim_id.split("/")[-1], "module": claim_id.split("::")[0],
                "family": family, "family_size": size, "statement": f"statement of {claim_id}", "model": "m",
                "params": {"model_name": "m"}, "status": "ok", "error": None, "metrics": {},
                "settings": {"paired": False, "alternative": "greater", "min_d": 0.0, "alpha": 0.05,
                             "ci_method": "analytic", "n_resamples": 200, "seed": 0},
                "comparison": comp.to_dict(),
                "samples": {"treated": list(map(float, t)), "control": list(map(float, c)), "sample_ids": None}}

    rng = np.random.default_rng(int(key[1:]))
    out = []
    for i in range(4):
        t, c = rng.normal(0.5 * i, 1, 30), rng.normal(0, 1, 30)
        out.append(make_result(f"h/test_{key}.py::test_x[{i}]", "fam", 4, t, c))
    return out


def statistics_write(folder, key):
    results = _stat_results(key)
    rows, families = rep.finalize(results, "holm")
    rep.write_statistics(results, rows, families, {"key": key}, Path(folder) / "statistics")


def statistics_read(folder, key):
    """The session's statistics as a reader (MLflow logging, the summary) gets them: only when the
    manifest vouches for every file."""
    out = Path(folder) / "statistics"
    if storage.verify_manifest(out):
        return None
    manifest = json.loads((out / storage.MANIFEST).read_text())
    if manifest.get("settings", {}).get("key") != key:
        return None
    return {rel: storage.read_verified(out, rel) for rel in sorted(manifest["files"]) if rel.endswith((".csv", ".md"))}


def statistics_expected(key):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        statistics_write(tmp, key)
        return statistics_read(tmp, key)


# The largest write emocheck does: the de-quantised copy of a model (a folder: weights, tokenizer,
# manifest), swapped in whole. A tiny random model per key stands in for the GGUF's weights.
_MODELS: dict = {}


def _model_for(key):
    if key not in _MODELS:
        from emocheck.testing import tiny_model

        _MODELS[key] = tiny_model("llama", n_layers=2, seed=int(key[1:]))
    return _MODELS[key]


def _model_copy_dir(folder, key) -> Path:
    return Path(folder) / "models" / f"tiny-{key}-v1"


def model_write(folder, key):
    from emocheck.models import registry

    tiny = _model_for(key)
    cache_dir = _model_copy_dir(folder, key)
    with storage.file_lock(cache_dir):      # as _load_gguf: a rebuild replaces the whole copy
        registry._install_copy(cache_dir, key * 16, lambda tmp: (tiny.model.save_pretrained(tmp),
                                                                 tiny.tokenizer.save_pretrained(tmp)))


def model_read(folder, key):
    """What a load would use: the quick look, then the weights read with the copy's digests checked
    alongside (None = the load rebuilds the copy instead)."""
    from emocheck.models import registry

    cache_dir = _model_copy_dir(folder, key)
    with storage.file_lock(cache_dir):
        if not registry._dequantised_copy_ok(cache_dir, sizes_only=True):
            return None
    try:
        model, _, verified = registry._load_copy(cache_dir, torch.float32, verify=True)
    except Exception:      # a copy a concurrent rebuild has just moved away: a load would retry
        return None
    return dict(model.state_dict()) if verified else None


def model_expected(key):
    return dict(_model_for(key).model.state_dict())


KINDS = {
    "activations": (activations_write, activations_read, activations_expected),
    "vectors": (vectors_write, vectors_read, vectors_expected),
    "parquet": (table_write, table_read, lambda key: _table_for(key)),
    "statistics": (statistics_write, statistics_read, statistics_expected),
    "model_copy": (model_write, model_read, model_expected),
}


def _same(got, want) -> bool:
    if isinstance(want, pd.DataFrame):
        return isinstance(got, pd.DataFrame) and got.equals(want)
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return False
        for k, w in want.items():
            g = got[k]
            if isinstance(w, torch.Tensor):
                if not (isinstance(g, torch.Tensor) and g.shape == w.shape and torch.equal(g, w)):
                    return False
            elif g != w:
                return False
        return True
    return got == want


@pytest.fixture
def fault_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCHECK_RESULTS_DIR", str(tmp_path / "results"))
    folder = tmp_path / "results" / "fault" / "artefacts"
    folder.mkdir(parents=True)
    return folder


def _write_forever(kind, folder, ready):
    import threading

    import tqdm

    # This child is SIGKILLed at a random moment. tqdm's default write lock holds a multiprocessing lock
    # inherited through fork and shared with the parent (taken even for a disabled bar), so a kill while
    # the child holds it would leave the parent's next progress bar waiting forever: give the child a
    # lock of its own.
    # The same for every subclass that took a lock of its own before the fork (transformers' and
    # huggingface_hub's progress bars of a model's save and load).
    classes = [tqdm.tqdm]
    while classes:
        cls = classes.pop()
        cls.set_lock(threading.RLock())
        classes.extend(cls.__subclasses__())
    write = KINDS[kind][0]
    ready.set()
    r = 0
    while True:
        write(folder, KEYS[r % len(KEYS)])
        r += 1


def _leftovers(root: Path) -> tuple[int, int]:
    tmps = [p for p in root.rglob(".*.tmp")]
    locks = [p for p in root.rglob("*.lock")]
    return len(tmps), len(locks)


# ----------------------------------------------------------------------------------------- kills


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_mid_write_never_leaves_a_trusted_corrupt_entry(kind, fault_dir):
    write, read, expected = KINDS[kind]
    want = {k: expected(k) for k in KEYS}
    for key in KEYS:   # complete entries first: a kill then interrupts a REwrite, the risky case
        write(fault_dir, key)
    rng = random.Random(f"kill-{kind}")
    kills = rounds = served = rebuilt = trusted_corrupt = tmp_left = 0
    deadline = time.monotonic() + (3.0 if KILLS is None else 1e9)
    while (kills < (KILLS or 10) and time.monotonic() < deadline) or kills < 5:
        ready = CTX.Event()
        child = CTX.Process(target=_write_forever, args=(kind, fault_dir, ready), daemon=True)
        child.start()
        ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        kills += 1
        for key in KEYS:
            rounds += 1
            got = read(fault_dir, key)
            if got is None:
                rebuilt += 1
            elif _same(got, want[key]):
                served += 1
            else:
                trusted_corrupt += 1
        tmp_left += _leftovers(fault_dir.parent)[0]
    # the next run's first write into each folder removes what the killed writers left
    for folder in {p.parent for p in fault_dir.parent.rglob("*")} | {fault_dir}:
        storage.clean_stale(folder, older_than=time.time() + 1, force=True)
    tmp_after, locks_after = _leftovers(fault_dir.parent)
    # and every entry is rebuilt correctly afterwards
    for key in KEYS:
        write(fault_dir, key)
        assert _same(read(fault_dir, key), want[key])
    _record(f"kill/{kind}", kills=kills, reads=rounds, served_correct=served, rebuilt=rebuilt,
            trusted_corrupt=trusted_corrupt, tmp_seen_after_kills=tmp_left, tmp_left_after_cleanup=tmp_after,
            locks_left_after_cleanup=locks_after)
    assert trusted_corrupt == 0
    assert tmp_after == 0 and locks_after == 0


# ----------------------------------------------------------------------------------------- concurrency


def _writer(kind, folder, keys, stop_at):
    write = KINDS[kind][0]
    n = 0
    while time.time() < stop_at:
        write(folder, keys[n % len(keys)])
        n += 1
    os._exit(0)


def _reader(kind, folder, keys, stop_at, queue, serve):
    read = KINDS[kind][1] if not serve else serve
    want = {k: KINDS[kind][2](k) for k in keys}
    served = wrong = missing = 0
    n = 0
    while time.time() < stop_at:
        key = keys[n % len(keys)]
        n += 1
        got = read(folder, key)
        if got is None:
            missing += 1
        elif _same(got, want[key]):
            served += 1
        else:
            wrong += 1
    queue.put((served, wrong, missing))
    queue.close()
    queue.join_thread()   # flush before os._exit (which skips the feeder thread)
    os._exit(0)


CONCURRENT = {
    # finding 1: two sessions rewriting the vectors/subspaces files for different keys
    "vectors": None,
    "parquet": None,
    # readers are consumers: cached_activations rebuilds what a writer has just dropped
    "activations": activations_serve,
}


@pytest.mark.parametrize("kind", list(CONCURRENT))
def test_concurrent_readers_and_writers_get_no_wrong_answer(kind, fault_dir):
    keys = KEYS[:2]
    for key in keys:
        KINDS[kind][0](fault_dir, key)
        KINDS[kind][2](key)   # warm the expected values before forking
    stop_at = time.time() + SECONDS
    queue = CTX.Queue()
    procs = [CTX.Process(target=_writer, args=(kind, fault_dir, keys[i:] + keys[:i], stop_at)) for i in range(2)]
    procs += [CTX.Process(target=_reader, args=(kind, fault_dir, keys[i:] + keys[:i], stop_at, queue, CONCURRENT[kind]))
              for i in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in range(2)]
    for p in procs:
        p.join(30)
    served = sum(r[0] for r in results)
    wrong = sum(r[1] for r in results)
    missing = sum(r[2] for r in results)
    _record(f"concurrent/{kind}", writers=2, readers=2, seconds=SECONDS, served=served, wrong=wrong, not_served=missing)
    assert wrong == 0
    assert served > 0


def test_concurrent_cold_fill_computes_once(fault_dir):
    """Four processes ask for the same missing activations: one extracts, all get the same numbers."""
    queue = CTX.Queue()

    def ask():
        calls = {"n": 0}
        tiny = _tiny()

        def loader():
            calls["n"] += 1
            return tiny

        activation_cache.clear_memo()
        acts = activation_cache.cached_activations(loader, tiny.identity, _ids("k9"), TEXTS, TRIGGERS, fault_dir,
                                                   n_layers=2, progress=False)
        queue.put((calls["n"], _same(dict(acts.tensors), activations_expected("k9"))))
        queue.close()
        queue.join_thread()
        os._exit(0)

    activations_expected("k9")
    rounds, computed, wrong = (4 if KILLS is None else max(4, KILLS // 5)), 0, 0
    for r in range(rounds):
        for p in fault_dir.iterdir():
            p.unlink()
        procs = [CTX.Process(target=ask) for _ in range(4)]
        for p in procs:
            p.start()
        got = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        computed += sum(c for c, _ in got)
        wrong += sum(1 for _, ok in got if not ok)
        assert sum(c for c, _ in got) == 1
    _record("concurrent/cold_fill", rounds=rounds, processes=4, extractions=computed, wrong=wrong)
    assert wrong == 0


# ----------------------------------------------------------------------------------------- edits and damage
# Not kills: a sidecar edited by hand or by a tool, a model copy damaged in place with its size and
# mtime kept, a user's file in statistics/, a statistics folder that is a link.


def _edit_record(rng, meta: dict) -> str:
    """One random edit of what the record says the tensors are; returns its name."""
    fields = [f for f in ("ids", "layers", "emotions", "sites", "positions", "tensor_names") if isinstance(meta.get(f), list)
              and len(meta[f]) > 1]
    field = rng.choice(fields)
    values = meta[field]
    how = rng.choice(["flip", "swap", "reverse"])
    if how == "flip" and all(isinstance(v, str) and v for v in values):
        i = rng.randrange(len(values))
        values[i] = values[i][:-1] + chr(ord(values[i][-1]) ^ 1)          # one bit of one character
    elif how == "swap":
        i, j = rng.sample(range(len(values)), 2)
        values[i], values[j] = values[j], values[i]
    else:
        values.reverse()
    return f"{field}/{how}"


def test_edited_metadata_is_never_served(fault_dir):
    """Random one-field edits of the activations and vectors sidecars (ids, layers, emotions, sites,
    positions): every edited record is detected and rebuilt, never served."""
    rng = random.Random("metadata-edits")
    rounds = KILLS or 10
    edits = served_wrong = rebuilt = 0
    kinds = {"activations": (activations_write, activations_serve, activations_expected,
                             lambda: next(p for p in fault_dir.glob("*.json"))),
             "vectors": (vectors_write, vectors_read, vectors_expected,
                         lambda: build._paths(PROFILE, "tiny")[rng.randrange(2)].with_suffix(".json"))}
    for name, (write, serve, expected, sidecar) in kinds.items():
        for p in fault_dir.iterdir():
            p.unlink()
        write(fault_dir, "k0")
        want = expected("k0")
        for _ in range(rounds):
            path = sidecar()
            meta = json.loads(path.read_text())
            before = json.dumps(meta, sort_keys=True)
            _edit_record(rng, meta)
            if json.dumps(meta, sort_keys=True) == before:
                continue
            path.write_text(json.dumps(meta))
            edits += 1
            got = serve(fault_dir, "k0")
            if got is None:
                rebuilt += 1
                write(fault_dir, "k0")
            elif not _same(got, want):
                served_wrong += 1
            if name == "vectors":
                got = build._load_saved(PROFILE, "tiny", "k0")
                if got is not None and got[0].emotions != ["anger", "gratitude", "remorse"]:
                    served_wrong += 1
    _record("edit/metadata", edits=edits, refused_and_rebuilt=rebuilt, served_after_rebuild=edits - rebuilt - served_wrong,
            wrong=served_wrong)
    assert served_wrong == 0 and edits >= rounds


def test_model_copy_damaged_in_place_is_never_used(fault_dir):
    """1 MiB (or the whole tensor data of the tiny copy) XOR'd at a random offset, size and mtime kept:
    a load by default never uses it and rebuilds the copy."""
    from emocheck.models import registry

    rng = random.Random("model-damage")
    rounds = KILLS or 10
    want = model_expected("k0")
    model_write(fault_dir, "k0")
    weights = _model_copy_dir(fault_dir, "k0") / "model.safetensors"
    served_damaged = caught = 0
    for _ in range(rounds):
        st = weights.stat()
        data = bytearray(weights.read_bytes())
        start = rng.randrange(0, max(1, len(data) - 1))
        for i in range(start, min(len(data), start + (1 << 20))):
            data[i] ^= rng.randrange(1, 256)
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        got = model_read(fault_dir, "k0")
        if got is None:
            caught += 1
        elif not _same(got, want):
            served_damaged += 1
        assert not registry._dequantised_copy_ok(weights.parent)
        model_write(fault_dir, "k0")
        assert _same(model_read(fault_dir, "k0"), want)
    _record("damage/model_copy_same_size_and_mtime", damaged=rounds, caught=caught, wrong=served_damaged)
    assert served_damaged == 0 and caught == rounds


def test_statistics_never_delete_a_users_file_or_write_through_a_link(fault_dir):
    rounds = KILLS or 10
    out = fault_dir / "statistics"
    kept = lost = 0
    past = time.time() - 3600
    for r in range(rounds):
        notes = out / f"my_notes_{r}.txt"
        if r:
            notes.write_text(f"notes {r}\n")
            os.utime(notes, (past, past))
        statistics_write(fault_dir, KEYS[r % len(KEYS)])
        for i in range(1, r + 1):
            if (out / f"my_notes_{i}.txt").is_file():
                kept += 1
            else:
                lost += 1
    target = fault_dir / "elsewhere"
    target.mkdir()
    (target / "older.csv").write_text("the user's\n")
    os.utime(target / "older.csv", (past, past))
    linked = fault_dir / "linked"
    linked.mkdir()
    (linked / "statistics").symlink_to(target, target_is_directory=True)
    from emocheck.errors import ConfigError

    with pytest.raises(ConfigError, match="symbolic link"):
        statistics_write(linked, "k0")
    target_intact = sorted(p.name for p in target.iterdir()) == ["older.csv"]
    _record("statistics/foreign_files", sessions=rounds, user_files_checked=kept + lost, kept=kept, wrong=lost,
            symlink_refused_target_intact=int(target_intact))
    assert lost == 0 and target_intact


def test_print_counts():
    """Summary line of everything above (run last in this module)."""
    kills = sum(c.get("kills", 0) for c in COUNTS.values())
    wrong = sum(c.get("wrong", 0) + c.get("trusted_corrupt", 0) for c in COUNTS.values())
    print(f"\n[fault-injection] total: kills={kills}, wrong_or_trusted_corrupt={wrong}, parts={len(COUNTS)}")
    assert wrong == 0
