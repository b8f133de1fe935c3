"""Phase 8 end to end for one model, profile and emotion: attribution, its validation against exact
patching, the circuit, and the circuit against random circuits on held-out prompts.

    python -m emocheck.circuits.experiment gemma3-270m --profile ci --emotion gratitude

Design (fixed before any judged result; everything at the last prompt token):
  direction   the final layer's vs_neutral emotion vector (resid_post, last token), training prompts
  source      each component's mean over a seeded sample of TRAINING neutral prompts (mean ablation)
  attribution on a seeded sample of TRAINING emotion prompts, two metrics: the final-layer projection
              on the direction, and the log-probability of the emotion's words as the next token
  validation  exact patching of EVERY component alone on a few training prompts, both metrics
  circuit     the smallest prefix of the (projection) attribution ranking whose TRAINING faithfulness
              reaches SHARE (emocheck.circuits.discovery)
  judged      on a seeded sample of HELD-OUT emotion prompts: faithfulness and completeness of the
              circuit and of K random circuits with its layer profile, minimality of each member

Edges and head roles of a circuit: emocheck.circuits.analysis. Outputs under results/<profile>/circuits/<model>/: attribution_<emotion>.csv, validation_<emotion>.csv,
circuit_<emotion>.json (cached by a key over everything that determines it; checksummed in
circuit_<emotion>.sha256.json, rebuilt when missing, stale or damaged), nulls_<emotion>.csv,
faithfulness_<emotion>.png, circuit_<emotion>.png.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch
from emocheck.progress import tqdm

from emocheck.circuits.attribution import attribute_metrics, flat
from emocheck.circuits.components import Activations, LastTokenRun, all_components, mean_activations, token_ids_for_words
from emocheck.circuits.discovery import (ablation_ranking, discover, evaluate_sets, minimality_sets,
                                         random_circuits)
from emocheck.circuits.exact import exact_effects, validate
from emocheck.errors import ConfigError
from emocheck.profiles import Profile, get_profile, results_dir
from emocheck.storage import json_bytes, read_artifact, write_artifact
from emocheck.storage import atomic_write_dataframe, file_lock, stable_hash
from emocheck import timing

EMOTIONS = ("gratitude", "anger", "apology")
SHARE = 0.8
CODE_VERSION = "circuits-v2"   # v2: train_curve has None past the first block reaching SHARE
EMOTION_WORDS = {
    "gratitude": ("thank", "thanks", "grateful", "appreciate", "gratitude"),
    "anger": ("angry", "furious", "outraged", "unacceptable", "annoyed"),
    "apology": ("sorry", "apologize", "apologies", "regret", "apologise"),
}
#: Sample sizes. The ci values were set by a 2-core CPU shared by 8 engineers, not by statistics.
#: random: circuits in the Monte-Carlo null. 199 at full too (it was 999; changed before any full result
#: existed, for the time budget): the smallest p is 1/200 = 0.005, below Holm's first threshold for the
#: 6 claims of a family over the two embedded models (0.05 / 6 = 0.0083), and 999 made the set
#: evaluations (one last-token row per set, keep and drop, per held-out prompt) about 40 of the full
#: run's minutes on 2 cores.
SETTINGS = {
    "smoke": {"attr_prompts": 6, "neutral_prompts": 12, "exact_prompts": 1, "held_out": 6, "random": 39},
    "ci": {"attr_prompts": 12, "neutral_prompts": 24, "exact_prompts": 2, "held_out": 12, "random": 199},
    "full": {"attr_prompts": 64, "neutral_prompts": 147, "exact_prompts": 8, "held_out": 63, "random": 199},
}


def settings(profile: Profile) -> dict:
    """The profile's sample sizes; `random` raised where the family (one claim per emotion and model)
    needs more draws to be supportable at all (emocheck.stats.nulls.null_draws_for: K + 1 >= 2 m / alpha)."""
    from emocheck.stats.nulls import null_draws_for

    cfg = dict(SETTINGS.get(profile.name, SETTINGS["ci"]))
    cfg["random"] = max(cfg["random"], null_draws_for(len(EMOTIONS) * len(profile.models)))
    return cfg


def circuit_null_draws(profile: Profile) -> int:
    """The random circuits a faithfulness / completeness claim is judged against (the claims declare it)."""
    return settings(profile)["random"]


def out_dir(profile: Profile, model_name: str):
    return results_dir(profile, "circuits", model_name)


def sample_texts(prompts: pd.DataFrame, label: str, split_name: str, n: int, rng) -> list[str]:
    """Up to n texts of one label and split, drawn without replacement by `rng`, in file order (the
    circuits' training, neutral and held-out samples; analysis and modulation redraw them the same way)."""
    rows = np.flatnonzero(((prompts.emotion == label) & (prompts.split == split_name)).to_numpy())
    pick = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return prompts.text.to_numpy()[pick].tolist()


@timing.timed("circuits")
def run_circuit(model_name: str, profile: Profile, emotion: str, progress: bool = True) -> dict:
    """The whole design above; returns the circuit summary (also written as circuit_<emotion>.json)."""
    from emocheck.models.registry import load_model
    from emocheck.representations.build import build_representations

    if emotion not in EMOTIONS:
        raise ConfigError(f"no circuit design for emotion {emotion!r}; one of {', '.join(EMOTIONS)}")
    reps = build_representations(model_name, profile, progress=progress)
    cfg = settings(profile)
    seed = profile.seed + 80021 + 97 * EMOTIONS.index(emotion)
    rng = np.random.default_rng(seed)
    prompts = reps.prompts
    attr_texts = sample_texts(prompts, emotion, "train", cfg["attr_prompts"], rng)
    neutral_texts = sample_texts(prompts, "neutral", "train", cfg["neutral_prompts"], rng)
    held_texts = sample_texts(prompts, emotion, "held_out", cfg["held_out"], rng)
    key = stable_hash({"code": CODE_VERSION, "model": model_name, "emotion": emotion, "cfg": cfg,
                       "vectors": reps.vectors.meta.get("key"), "share": SHARE, "words": EMOTION_WORDS[emotion],
                       "texts": [attr_texts, neutral_texts, held_texts]}, 24)
    out = out_dir(profile, model_name)
    path = out / f"circuit_{emotion}.json"
    with file_lock(path):
        cached = read_circuit(path, key)                     # verified by checksum; rebuilt when damaged
        if cached is not None:
            return cached
        loaded = load_model(model_name)
        result = _compute(loaded, reps, emotion, cfg, seed, attr_texts, neutral_texts, held_texts, out, progress)
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


def _compute(loaded, reps, emotion, cfg, seed, attr_texts, neutral_texts, held_texts, out, progress) -> dict:
    from emocheck.circuits.figures import plot_circuit, plot_faithfulness

    comps = all_components(loaded)
    last = loaded.n_layers - 1
    direction = reps.vectors.vector(emotion, last, kind="vs_neutral", site="hook_resid_post", position="last").float()
    token_ids = token_ids_for_words(loaded, EMOTION_WORDS[emotion])
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
    ev = evaluate_sets(loaded, held_texts, source, sets, direction=direction, progress=progress,
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocheck.circuits.experiment")
    p.add_argument("model")
    p.add_argument("--profile", default=None)
    p.add_argument("--emotion", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)       # one thread: on a shared small machine more threads only spin
    from emocheck.circuits.analysis import circuit_edges, circuit_roles

    profile = get_profile(args.profile)
    for e in ([args.emotion] if args.emotion else EMOTIONS):
        r = run_circuit(args.model, profile, e)
        null = np.array(r["null_faithfulness"])
        print(f"{args.model} {e}: circuit of {r['size']}/{r['n_components']} ({', '.join(r['circuit'])}); "
              f"held-out faithfulness {r['faithfulness']:.3f} (random mean {null.mean():.3f}, "
              f"95th pct {np.quantile(null, 0.95):.3f}); completeness {r['completeness']:.3f}; "
              f"attribution vs exact Spearman: " + ", ".join(
                  f"{m} {v['all'].get('spearman', float('nan')):.3f}" for m, v in r["validation"].items()))
        edges = circuit_edges(args.model, profile, e, progress=True)
        top = edges.reindex(edges.edge.abs().sort_values(ascending=False).index).head(5)
        print("  strongest edges (share of the source's ablation effect through the target): " + "; ".join(
            f"{a}->{b} {w:.1f} of {t:.1f}" for a, b, w, t in zip(top.src, top.dst, top.edge, top.total_src)))
        if "edge_attribution" in edges and len(edges) > 2:
            from scipy import stats as st
            print(f"  edge attribution vs exact edges: Spearman {st.spearmanr(edges.edge, edges.edge_attribution).statistic:.3f} "
                  f"over {len(edges)} edges")
        roles = circuit_roles(args.model, profile, e, progress=True)
        print("  head roles: " + "; ".join(f"{k} {v}" for k, v in roles.role.value_counts().items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
