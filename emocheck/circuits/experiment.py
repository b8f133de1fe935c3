"""Phase 8 end to end for one model, profile and emotion: attribution, its validation against exact
patching, the circuit, and the circuit against random circuits on held-out prompts.

    python -m emocheck.circuits gemma3-270m --profile ci --emotion gratitude

Design (fixed before any judged result; everything at the last prompt token):
  direction   the final layer's vs_neutral emotion vector (resid_post, last token), training prompts
  source      each component's mean over a seeded sample of TRAINING neutral prompts (mean ablation
              for the ranking and the discovery)
  attribution on a seeded sample of TRAINING emotion prompts, two metrics: the final-layer projection
              on the direction, and the log-probability of the emotion's words as the next token
  validation  exact patching of EVERY component alone on a few training prompts, both metrics
  circuit     the smallest prefix of the (projection) attribution ranking whose TRAINING faithfulness
              reaches SHARE (emocheck.circuits.discovery)
  judged      on a seeded sample of HELD-OUT emotion prompts, mean-ablating to each component's mean
              over a seeded sample of HELD-OUT neutral prompts: faithfulness and completeness of the
              circuit and of K random circuits with its type-and-layer profile (as many heads per layer,
              the same MLPs), minimality of each member

Selection apart from evaluation: the ranking subtracts the training neutral mean; a held-out judgement
against that same mean would keep the noise that ranked a component high (with no signal in any
component the circuit beat its random circuits in most data sets: tests/test_circuits_calibration.py),
so the judged means come from held-out neutral prompts (`design_texts`). Random circuits are matched on
component type as well as layer: an MLP and a head are not exchangeable (an MLP's write is larger), and
a random circuit that swaps the circuit's MLPs for heads loses by construction.

Edges and head roles of a circuit: emocheck.circuits.analysis. Outputs under results/<profile>/circuits/<model>/: attribution_<emotion>.csv, validation_<emotion>.csv,
circuit_<emotion>.json (cached by a key over everything that determines it; checksummed in
circuit_<emotion>.sha256.json, rebuilt when missing, stale or damaged), nulls_<emotion>.csv,
faithfulness_<emotion>.png, circuit_<emotion>.png.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
from emocheck.progress import tqdm

from emocheck.circuits.attribution import attribute_metrics, flat
from emocheck.circuits.components import Activations, LastTokenRun, all_components, mean_activations, token_ids_for_words
from emocheck.circuits.discovery import (ablation_ranking, discover, evaluate_sets, minimality_sets,
                                         random_circuits)
from emocheck.circuits.exact import exact_effects, validate
from emocheck.errors import ConfigError
from emocheck.profiles import Profile, results_dir
from emocheck.storage import json_bytes, read_artifact, write_artifact
from emocheck.storage import atomic_write_dataframe, file_lock, stable_hash
from emocheck.study import EMBEDDED, EMBEDDED_EMOTIONS, study_for
from emocheck import timing

#: The embedded study's emotions and next-token words (emocheck.study); a run reads the active study's.
EMOTIONS = EMBEDDED_EMOTIONS
SHARE = 0.8
CODE_VERSION = "circuits-v3"   # v3: held-out neutral means for the judgement; type-matched random circuits
EMOTION_WORDS = {e: d.target_words for e, d in EMBEDDED.items()}


def settings(profile: Profile) -> dict:
    """The profile's phase-8 sizes (emocheck.profiles.CircuitSizes) as the dict the circuit's cache key
    hashes; `random` raised where the family (one claim per emotion and model) needs more draws to be
    supportable at all (emocheck.stats.nulls.null_draws_for: K + 1 >= 2 m / alpha)."""
    from emocheck.stats.nulls import null_draws_for

    cfg = asdict(profile.circuits)
    cfg["random"] = max(cfg["random"], null_draws_for(len(study_for(profile).emotions) * len(profile.models)))
    return cfg


def circuit_null_draws(profile: Profile) -> int:
    """The random circuits a faithfulness / completeness claim is judged against (the claims declare it)."""
    return settings(profile)["random"]


def circuit_seed(profile: Profile, study, emotion: str) -> int:
    """The seed of an emotion's circuit samples (analysis and modulation redraw from it)."""
    return profile.seed + 80021 + 97 * study.index(emotion)


def out_dir(profile: Profile, model_name: str):
    return results_dir(profile, "circuits", model_name)


def sample_texts(prompts: pd.DataFrame, label: str, split_name: str, n: int, rng) -> list[str]:
    """Up to n texts of one label and split, drawn without replacement by `rng`, in file order (the
    circuits' training, neutral and held-out samples; analysis and modulation redraw them the same way)."""
    rows = np.flatnonzero(((prompts.emotion == label) & (prompts.split == split_name)).to_numpy())
    pick = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return prompts.text.to_numpy()[pick].tolist()


def design_texts(prompts: pd.DataFrame, emotion: str, cfg: dict, seed: int) -> dict[str, list[str]]:
    """The circuit design's prompt samples, drawn in this order by one seeded generator (analysis and
    modulation redraw them the same way): 'attr' (training emotion prompts: attribution, discovery),
    'neutral' (training neutral prompts: the ranking's ablation means), 'held_out' (held-out emotion
    prompts: judged), 'held_out_neutral' (held-out neutral prompts: the judgement's ablation means,
    disjoint from everything the ranking saw)."""
    rng = np.random.default_rng(seed)
    return {"attr": sample_texts(prompts, emotion, "train", cfg["attr_prompts"], rng),
            "neutral": sample_texts(prompts, "neutral", "train", cfg["neutral_prompts"], rng),
            "held_out": sample_texts(prompts, emotion, "held_out", cfg["held_out"], rng),
            "held_out_neutral": sample_texts(prompts, "neutral", "held_out", cfg["neutral_prompts"], rng)}


@timing.timed("circuits")
def run_circuit(model_name: str, profile: Profile, emotion: str, progress: bool = True) -> dict:
    """The whole design above; returns the circuit summary (also written as circuit_<emotion>.json)."""
    from emocheck.models.registry import load_model
    from emocheck.representations.build import build_representations

    study = study_for(profile)
    if emotion not in study.emotions or not study.design(emotion).target_words:
        raise ConfigError(f"no circuit design for emotion {emotion!r}; one of "
                          f"{', '.join(e for e in study.emotions if study.design(e).target_words)}")
    words = study.design(emotion).target_words
    reps = build_representations(model_name, profile, progress=progress)
    cfg = settings(profile)
    seed = circuit_seed(profile, study, emotion)
    texts = design_texts(reps.prompts, emotion, cfg, seed)
    key = stable_hash({"code": CODE_VERSION, "model": model_name, "emotion": emotion, "cfg": cfg,
                       "vectors": reps.vectors.meta.get("key"), "share": SHARE, "words": words,
                       "texts": [texts["attr"], texts["neutral"], texts["held_out"], texts["held_out_neutral"]]}, 24)
    out = out_dir(profile, model_name)
    path = out / f"circuit_{emotion}.json"
    with file_lock(path):
        cached = read_circuit(path, key)                     # verified by checksum; rebuilt when damaged
        if cached is not None:
            return cached
        loaded = load_model(model_name)
        result = _compute(loaded, reps, emotion, cfg, seed, texts, out, progress, words)
        result["key"] = key
        write_circuit(path, result)
    return result


_MEANS: dict = {}           # (id of the loaded model, texts) -> (weakref to it, Activations)


def neutral_means(loaded, texts) -> Activations:
    """mean_activations(loaded, texts), remembered for the same model object and the same texts in the
    same order: the same computation, so the same numbers. At `full` every emotion's sample is the
    whole training neutral split (147 of 147), and the edges and roles redraw the discovery's sample,
    so one pass serves them all (up to 8 entries are kept)."""
    import weakref

    key = (id(loaded), tuple(texts))
    hit = _MEANS.get(key)
    if hit is not None and hit[0]() is loaded:
        return hit[1]
    means = mean_activations(loaded, list(texts))
    if len(_MEANS) >= 8:
        _MEANS.pop(next(iter(_MEANS)))
    _MEANS[key] = (weakref.ref(loaded), means)
    return means


def circuit_meta_path(path):
    """The checksum sidecar of circuit_<emotion>.json (the default `<stem>.json` would be the file itself)."""
    return path.with_name(path.stem + ".sha256.json")


def write_circuit(path, result: dict) -> None:
    write_artifact(path, json_bytes(result), {"key": result["key"]}, meta_path=circuit_meta_path(path))


def read_circuit(path, key: str) -> dict | None:
    """The cached circuit summary if its checksum and key match, else None (missing, stale or damaged)."""
    found = read_artifact(path, key=key, meta_path=circuit_meta_path(path), what="circuit summary")
    if found is None:
        return None
    try:
        return json.loads(found[0])
    except ValueError:          # checksum matched bytes that are not JSON: a buggy writer; rebuild
        return None


def _compute(loaded, reps, emotion, cfg, seed, texts, out, progress, words) -> dict:
    from emocheck.circuits.figures import plot_circuit, plot_faithfulness

    attr_texts, neutral_texts, held_texts = texts["attr"], texts["neutral"], texts["held_out"]

    comps = all_components(loaded)
    last = loaded.n_layers - 1
    direction = reps.vectors.vector(emotion, last, kind="vs_neutral", site="hook_resid_post", position="last").float()
    token_ids = token_ids_for_words(loaded, words)
    metrics = {"projection": dict(direction=direction), "logprob": dict(token_ids=token_ids)}
    source = neutral_means(loaded, neutral_texts)

    # attribution over every component, both metrics, on training emotion prompts; each prompt's cached
    # prefix serves its attribution, exact validation and discovery runs
    runs = LastTokenRun.many(loaded, attr_texts)
    attr = {m: [] for m in metrics}
    for text, run in tqdm(list(zip(attr_texts, runs)), desc=f"attribution {emotion}", disable=not progress, leave=False):
        scores = attribute_metrics(loaded, text, source, metrics, run=run)
        for m in metrics:
            attr[m].append(flat(scores[m]).numpy())
    attr = {m: np.stack(v) for m, v in attr.items()}                    # [n_prompts, n_components]
    table = pd.DataFrame({"component": [c.label for c in comps], "hook": [c.hook_name for c in comps],
                          "kind": [c.kind for c in comps], "layer": [c.layer for c in comps],
                          "head": [c.head for c in comps]})
    for m in metrics:
        table[f"attribution_{m}"] = attr[m].mean(0)
        table[f"ablation_effect_{m}"] = -attr[m].mean(0)
    ranking = ablation_ranking(attr["projection"].mean(0))
    table["rank_projection"] = np.argsort(ranking) + 1
    atomic_write_dataframe(out / f"attribution_{emotion}.csv", table)

    # validation: exact patching of every component alone on a few training prompts
    rows = []
    for p, text in enumerate(attr_texts[: cfg["exact_prompts"]]):
        for m, kw in metrics.items():
            ex = exact_effects(loaded, text, source, range(len(comps)), metric=m, run=runs[p], **kw)
            for i, c in enumerate(comps):
                rows.append({"prompt": p, "metric": m, "component": c.label, "kind": c.kind, "layer": c.layer,
                             "attribution": float(attr[m][p, i]), "exact": float(ex[i])})
    val = pd.DataFrame(rows)
    atomic_write_dataframe(out / f"validation_{emotion}.csv", val)
    validation = {m: validate(df) for m, df in val.groupby("metric")}

    # discovery on training prompts, judged on held-out prompts against random circuits
    found = discover(loaded, attr_texts, source, ranking, share=SHARE, direction=direction, runs=runs)
    circuit = found["circuit"]
    rand = random_circuits(circuit, comps, cfg["random"], seed)
    sets = [circuit] + rand + minimality_sets(circuit)
    judge_source = neutral_means(loaded, texts["held_out_neutral"])       # disjoint from the ranking's means
    ev = evaluate_sets(loaded, held_texts, judge_source, sets, direction=direction, progress=progress,
                       runs=LastTokenRun.many(loaded, held_texts))
    faith, compl = ev.faithfulness(), ev.completeness()
    k = len(rand)
    marginal = faith[0] - faith[1 + k:]
    atomic_write_dataframe(out / f"nulls_{emotion}.csv", pd.DataFrame(
        {"set": range(k + 1), "random": [False] + [True] * k, "faithfulness": faith[:k + 1],
         "completeness": compl[:k + 1], "members": [" ".join(comps[c].label for c in s) for s in [circuit] + rand]}))
    overlap = [len(set(circuit) & set(s)) / len(circuit) for s in rand]
    result = {
        "model": loaded.name, "emotion": emotion, "share": SHARE, "n_components": len(comps),
        "circuit": [comps[c].label for c in circuit], "circuit_index": circuit, "size": len(circuit),
        "size_fraction": len(circuit) / len(comps), "reached_on_train": found["reached"],
        "train_curve": found["curve"], "train_total_effect": found["total_effect"],
        "held_out_total_effect": ev.total / len(ev.full), "n_held_out": len(held_texts),
        "n_held_out_neutral": len(texts["held_out_neutral"]),
        "faithfulness": float(faith[0]), "completeness": float(compl[0]),
        "null_faithfulness": faith[1:k + 1].tolist(), "null_completeness": compl[1:k + 1].tolist(),
        "random_overlap_mean": float(np.mean(overlap)),
        "minimality": {comps[c].label: float(v) for c, v in zip(circuit, marginal)},
        "attribution": {comps[c].label: float(table.loc[c, "attribution_projection"]) for c in circuit},
        "validation": _jsonable(validation), "emotion_token_ids": token_ids,
        "settings": cfg,
    }
    plot_faithfulness(result, out / f"faithfulness_{emotion}.png")
    plot_circuit(result, comps, loaded.n_layers, loaded.n_heads, out / f"circuit_{emotion}.png")
    return result


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
