"""Run a list of Conditions on prompts: batched patched generation, fluency, evaluator scores, cache.

Every (condition, prompt) row of the design becomes one row of one batched generation (one direction
per row, zeros at the layers a row does not patch, so a sweep over layers is one generation). Rows
are ordered by prompt so a batch mixes few prompt lengths; prompting rows (a text prefix) go in
batches of their own, so the prefixes never change the padding of the patched rows. Per-batch parts
stream to ``out_dir/parts`` (a killed run resumes), then the table is scored and written once.

Fluency of a prompting row is measured as a continuation of the NEUTRAL opening (without its
prefix), the same instrument as for every patched row.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emocheck.errors import ConfigError
from emocheck.patching.conditions import Condition
from emocheck.patching.fluency import fluency_table
from emocheck.patching.engine import generate_patched
from emocheck.patching.residual import PatchSpec, tokenize_prompts
from emocheck.storage import file_lock, read_artifact, read_table_artifact, sidecar_path, stable_hash, write_table_artifact
from emocheck.study import EMBEDDED_EMOTIONS, make_study

RUNNER_VERSION = 2
#: The embedded study's score columns (a run scores the active study's: Study.score_columns).
SCORE_COLUMNS = make_study(EMBEDDED_EMOTIONS).score_columns()


def condition_key(c: Condition) -> dict:
    return {"name": c.name, "layer": c.layer, "alpha": c.alpha, "seed": c.seed, "prefix": c.prefix,
            "prompts": list(c.prompt_ids) if c.prompt_ids is not None else None,
            "vec": stable_hash(np.round(c.vector.double().numpy(), 6).tolist())}


def design_rows(prompts: pd.DataFrame, conditions: list[Condition]) -> list[tuple[int, int]]:
    """(condition index, prompt index) for every row, prompt-major, patched rows before prompting rows."""
    index = {pid: i for i, pid in enumerate(prompts["id"])}
    rows = []
    for ci, c in enumerate(conditions):
        ids = prompts["id"] if c.prompt_ids is None else c.prompt_ids
        for pid in ids:
            if pid not in index:
                raise ConfigError(f"condition {c.name!r} names prompt {pid!r}, which is not in this run")
            rows.append((ci, index[pid]))
    seen = set()
    for ci, pi in rows:
        key = (conditions[ci].name, pi)
        if key in seen:
            raise ConfigError(f"condition {conditions[ci].name!r} is run twice on prompt {prompts['id'].iloc[pi]!r}")
        seen.add(key)
    return sorted(rows, key=lambda r: (bool(conditions[r[0]].prefix), r[1], r[0]))


def batches(rows, conditions, rows_per_batch: int) -> list[list[tuple[int, int]]]:
    out, cur, cur_prefixed = [], [], None
    for r in rows:
        prefixed = bool(conditions[r[0]].prefix)
        if cur and (len(cur) >= rows_per_batch or prefixed != cur_prefixed):
            out.append(cur)
            cur = []
        cur.append(r)
        cur_prefixed = prefixed
    if cur:
        out.append(cur)
    return out


def delta_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """Deltas are added in float32 at least, whatever the model dtype (bf16 would round small patches away)."""
    return torch.promote_types(model_dtype, torch.float32)


def run_conditions(loaded, prompts: pd.DataFrame, conditions: list[Condition], spec: PatchSpec, out_dir: Path,
                   rows_per_batch: int = 96, evaluators: bool = True, progress: bool = True,
                   generate=generate_patched, score_columns=SCORE_COLUMNS) -> pd.DataFrame:
    """Generate every design row, score it (`score_columns`: the study's, Study.score_columns), and
    return (and write) the samples table (cached by key)."""
    from emocheck.progress import tqdm

    out_dir = Path(out_dir)
    score_columns = tuple(score_columns)
    # the embedded study's columns are the key's default, so its cached tables stay valid
    scored = {} if score_columns == SCORE_COLUMNS else {"scores": list(score_columns)}
    key = stable_hash({"v": RUNNER_VERSION, "model": getattr(loaded, "identity", {}), "spec": spec.to_dict(),
                       "prompts": prompts[["id", "text"]].values.tolist(), "rows": rows_per_batch,
                       "conds": [condition_key(c) for c in conditions], "eval": evaluators, **scored})
    samples_path, meta_path = out_dir / "samples.parquet", out_dir / "samples.json"
    with file_lock(out_dir / "samples"):
        cached = read_table_artifact(samples_path, key=key, meta_path=meta_path, what="samples table")
        if cached is not None:   # verified by checksum; a truncated or stale table is regenerated
            if not evaluators or _scored_by_current_instruments(cached):
                return cached
            # The generations are current but the instruments changed since they were scored (e.g. refitted
            # evaluator heads): re-score the cached texts instead of serving stale scores or regenerating.
            base = cached.drop(columns=[c for c in (*score_columns, "empty", "evaluator_ids") if c in cached])
            samples = pd.concat([base, score_all(base["text"].tolist(), score_columns)], axis=1)
            found = read_artifact(samples_path, key=key, meta_path=meta_path, what="samples table")
            write_table_artifact(samples_path, samples, {**(found[1] if found else {}), "key": key,
                                                         "rescored_for": evaluator_ids()}, meta_path=meta_path)
            return samples
        layers = sorted({c.layer for c in conditions if c.layer is not None})
        if not layers:
            raise ConfigError("no condition names a layer")
        spec = spec.replace(layers=tuple(layers), alpha=1.0)      # alpha is folded into each vector
        spec.validate(loaded.n_layers)
        parts_dir = out_dir / "parts"
        parts_dir.mkdir(parents=True, exist_ok=True)
        jobs = batches(design_rows(prompts, conditions), conditions, rows_per_batch)
        dtype = delta_dtype(loaded.dtype)
        part_paths = []
        t0 = time.perf_counter()
        for bi, rows in enumerate(tqdm(jobs, desc=f"patching {getattr(loaded, 'name', '')}", disable=not progress)):
            part = parts_dir / f"part-{key}-{bi:05d}.parquet"
            part_paths.append(part)
            if read_table_artifact(part, what="part file") is not None:
                continue
            conds = [conditions[c] for c, _ in rows]
            neutral = [prompts["text"].iloc[p] for _, p in rows]
            texts = [c.prefix + t for c, t in zip(conds, neutral)]
            dirs = {layer: torch.stack([c.vector if c.layer == layer else torch.zeros_like(c.vector) for c in conds]
                                       ).to(dtype) for layer in layers}
            res = generate(loaded, texts, spec, dirs)
            if any(c.prefix for c in conds):
                ids, mask = tokenize_prompts(loaded, neutral)
                res_for_fluency = dataclasses.replace(res, prompts=neutral, input_ids=ids.cpu(), attention_mask=mask.cpu())
            else:
                res_for_fluency = res
            flu = fluency_table(loaded, res_for_fluency)
            df = pd.DataFrame({
                "sample_id": [prompts["id"].iloc[p] for _, p in rows],
                "prompt": neutral,
                "prefix": [c.prefix for c in conds],
                "condition": [c.name for c in conds],
                "kind": [c.kind for c in conds],
                "emotion": [c.emotion or "" for c in conds],
                "layer": [-1 if c.layer is None else c.layer for c in conds],
                "alpha": [c.alpha for c in conds],
                "seed": [-1 if c.seed is None else c.seed for c in conds],
                "norm": [c.norm for c in conds],
                "text": res.texts,
                "new_token_ids": [" ".join(map(str, res.new_tokens[i, : res.lengths[i]].tolist())) for i in range(len(rows))],
            })
            df = pd.concat([df, flu], axis=1)
            write_table_artifact(part, df)
        gen_seconds = time.perf_counter() - t0
        samples = pd.concat([_read_part(p) for p in part_paths], ignore_index=True)
        if "topic" in prompts:
            samples["topic"] = samples["sample_id"].map(dict(zip(prompts["id"], prompts["topic"])))
        if evaluators:
            samples = pd.concat([samples, score_all(samples["text"].tolist(), score_columns)], axis=1)
        else:
            samples["empty"] = [not str(t).strip() for t in samples["text"]]
        write_table_artifact(samples_path, samples, {
            "key": key, "spec": spec.to_dict(), "n_conditions": len(conditions), "n_rows": len(samples),
            "n_prompts": len(prompts), "generation_seconds": gen_seconds,
            "conditions": [condition_key(c) for c in conditions]}, meta_path=meta_path)
        for p in part_paths:
            p.unlink(missing_ok=True)
            sidecar_path(p).unlink(missing_ok=True)
        return samples


def _read_part(path: Path) -> pd.DataFrame:
    df = read_table_artifact(path, what="part file")
    if df is None:   # damaged between its check above and now: only another writer can do that
        raise ConfigError(f"part file {path} was damaged while this run used it; run again (it is regenerated)")
    return df


SCORING_EVALUATORS = ("sentiment", "politeness", "emotion")


def evaluator_ids() -> str:
    """The model ids of the instruments score_all uses (a refitted head has a new id)."""
    from emocheck.evaluators import get_evaluator

    return ";".join(get_evaluator(name).model_id for name in SCORING_EVALUATORS)


def _scored_by_current_instruments(samples: pd.DataFrame) -> bool:
    return "evaluator_ids" in samples and bool((samples["evaluator_ids"].astype(str) == evaluator_ids()).all())


def score_all(texts: list[str], columns=SCORE_COLUMNS) -> pd.DataFrame:
    """The T2 evaluators, unchanged: sentiment score, politeness score, and the GoEmotions labels of
    `columns` (``emo_<label>``; the study's score columns); the `evaluator_ids` column says which
    instruments scored them."""
    from emocheck.evaluators import get_evaluator

    out = pd.DataFrame(index=range(len(texts)))
    s = get_evaluator("sentiment").score(texts)
    out["sentiment"] = s["score"].to_numpy()
    p = get_evaluator("politeness").score(texts)
    out["politeness"] = p["score"].to_numpy()
    e = get_evaluator("emotion").score(texts)
    for label in (c[len("emo_"):] for c in columns if c.startswith("emo_")):
        out[f"emo_{label}"] = e[label].to_numpy()
    out["empty"] = s["empty"].to_numpy() if "empty" in s else [not t.strip() for t in texts]
    out["evaluator_ids"] = evaluator_ids()
    return out


def empty_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Per condition: rows, empty continuations (scores NaN; a vector causing early EOS is informative)."""
    empty = samples["empty"] if "empty" in samples else samples["text"].map(lambda t: not str(t).strip())
    g = samples.assign(_empty=empty.astype(bool)).groupby(["condition", "kind", "emotion"], as_index=False)
    return g.agg(n_rows=("_empty", "size"), n_empty=("_empty", "sum")).assign(
        empty_fraction=lambda d: d["n_empty"] / d["n_rows"])
