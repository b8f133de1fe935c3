"""Phases 2-3 for one model and profile, end to end: prompts -> cached activations -> vectors, subspaces.

    reps = build_representations("smollm2-135m", get_profile("ci"))
    reps.vectors.vector("gratitude", layer=10)           # emotion_vec, from training prompts
    reps.activations.get(10, "hook_resid_post", "last")  # [n_prompts, d_model]
    reps.prompts                                         # ids, emotions, texts, split ('train'/'held_out')

Everything is cached on disk under results/<profile>/ and memoised per process, so pytest fixtures,
notebooks and benchmarks share one extraction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emocheck import timing
from emocheck.representations.cache import ActivationSet, cached_activations
from emocheck.dataset import dataset_hash, default_dataset_path, emotions_of, is_project_dataset, load_emotion_prompts, split, subsample
from emocheck.representations.extraction import POSITION_RULES, RESID_SITES
from emocheck.models.registry import load_model, model_identity, model_n_layers
from emocheck.errors import DatasetError
from emocheck.profiles import Profile, results_dir, safe_part
from emocheck.storage import file_lock, load_tensors_artifact, save_tensors_artifact, stable_hash
from emocheck.representations.vectors import (EmotionSubspaces, EmotionVectors, compute_emotion_subspaces, compute_emotion_vectors)

log = logging.getLogger(__name__)

# Bump when vectors or subspaces are computed differently, so saved ones are recomputed.
VECTORS_CODE_VERSION = "vectors-v1"


@dataclass
class Representations:
    model: str
    profile: Profile
    prompts: pd.DataFrame            # aligned with activations.ids; column 'split'
    activations: ActivationSet
    vectors: EmotionVectors
    subspaces: EmotionSubspaces

    @property
    def emotions(self) -> list[str]:
        return self.vectors.emotions

    @property
    def layers(self) -> list[int]:
        return self.activations.layers

    def rows(self, emotion: str | list[str] | None = None, split_name: str | None = None) -> np.ndarray:
        """Boolean mask over prompts for an emotion (or several) and a split."""
        return prompt_mask(self.prompts, emotion, split_name)


def prompt_mask(prompts: pd.DataFrame, emotion: str | list[str] | None = None,
                split_name: str | None = None) -> np.ndarray:
    """Boolean mask over a prompts table (columns `emotion`, `split`) for an emotion (or several) and a split."""
    mask = np.ones(len(prompts), dtype=bool)
    if emotion is not None:
        wanted = [emotion] if isinstance(emotion, str) else list(emotion)
        mask &= prompts["emotion"].isin(wanted).to_numpy()
    if split_name is not None:
        mask &= (prompts["split"] == split_name).to_numpy()
    return mask


_MEMO: dict[tuple, Representations] = {}


def dataset_path(profile: Profile, dataset: str | Path | None = None) -> Path:
    """The dataset a build reads: the argument, else the profile's, else $EMOCHECK_DATASET / the project's."""
    chosen = dataset or profile.dataset
    return Path(chosen).resolve() if chosen else default_dataset_path().resolve()


def prompts_for_profile(profile: Profile, emotions: list[str] | None = None,
                        dataset: str | Path | None = None) -> pd.DataFrame:
    path = dataset_path(profile, dataset)
    df = load_emotion_prompts(path, emotions=emotions)
    digest = dataset_hash(df)
    df = subsample(df, profile.prompts_per_emotion, seed=profile.seed)
    df = df.assign(split=split(df, profile.held_out_fraction, seed=profile.seed).to_numpy())
    df = df.reset_index(drop=True)
    df.attrs.update(path=str(path), dataset_hash=digest)
    return df


def dataset_tag(prompts: pd.DataFrame) -> str:
    """'' for the project's dataset (its files keep their names), else '_<stem>-<hash8>'."""
    path = prompts.attrs["path"]
    if is_project_dataset(path):
        return ""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(path).stem)[:40]
    return f"_{stem}-{prompts.attrs['dataset_hash'][:8]}"


@timing.timed("representations")
def build_representations(model_name: str, profile: Profile, *, emotions: list[str] | None = None,
                          k: int = 10, progress: bool = True, dataset: str | Path | None = None) -> Representations:
    """`dataset`: a CSV/JSONL path; default the profile's dataset, else $EMOCHECK_DATASET, else the project's."""
    prompts = prompts_for_profile(profile, emotions, dataset)
    key = (model_name, profile.name, profile.prompts_per_emotion, profile.held_out_fraction, profile.seed,
           tuple(emotions or ()), k, prompts.attrs["dataset_hash"])
    if key in _MEMO:
        return _MEMO[key]
    identity = model_identity(model_name)
    acts = cached_activations(
        lambda: load_model(model_name), identity,
        prompts["id"].tolist(), prompts["text"].tolist(), prompts["trigger"].tolist(),
        results_dir(profile, "activations", identity["name"]),
        positions=POSITION_RULES, sites=RESID_SITES, n_layers=model_n_layers(model_name),
        batch_size=profile.batch_size, progress=progress,
    )
    train = prompts["split"].to_numpy() == "train"
    emos = emotions_of(prompts)
    labels = prompts["emotion"].to_numpy()
    train_acts = ActivationSet(acts.model, [i for i, t in zip(acts.ids, train) if t],
                               {n: t[train] for n, t in acts.tensors.items()}, acts.meta)
    train_ids = [i for i, t in zip(acts.ids, train) if t]
    # The activation key already hashes the prompts' ids, texts and triggers (all that determines
    # activations); the dataset hash adds the labels and metadata the vectors are computed from.
    meta = {"model": identity, "profile": profile.name, "activation_key": acts.meta["key"], "emotions": emos,
            "layers": acts.layers, "train_ids": train_ids, "k": k, "code": VECTORS_CODE_VERSION,
            "dataset": prompts.attrs["path"], "dataset_hash": prompts.attrs["dataset_hash"],
            "n_train": {e: int(((labels == e) & train).sum()) for e in [*emos, "neutral"]}}
    meta["key"] = stable_hash({n: meta[n] for n in ("activation_key", "emotions", "train_ids", "k", "code",
                                                    "dataset_hash")}, 24)
    name = identity["name"] + dataset_tag(prompts)
    saved = _load_saved(profile, name, meta["key"])
    if saved is not None:
        vectors, subspaces = saved
    else:
        vectors = compute_emotion_vectors(train_acts, labels[train], emos, model=identity["name"])
        subspaces = compute_emotion_subspaces(train_acts, labels[train], emos, k=k, model=identity["name"])
        vectors.meta = subspaces.meta = meta
        _save(profile, name, vectors, subspaces, meta)
    reps = Representations(identity["name"], profile, prompts, acts, vectors, subspaces)
    _MEMO[key] = reps
    return reps


def _paths(profile: Profile, name: str) -> tuple[Path, Path]:
    name = safe_part(name)
    return (results_dir(profile, "emotion_vectors") / f"{name}_vectors_token_based.safetensors",
            results_dir(profile, "emotion_subspaces") / f"{name}_subspaces.safetensors")


def _split_norms(tensors: dict) -> tuple[dict, dict]:
    norms = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("neutral_norm/")}
    vecs = {k: v for k, v in tensors.items() if not k.startswith("neutral_norm/")}
    return vecs, norms


def _load_saved(profile: Profile, name: str, key: str):
    """Vectors and subspaces saved by an earlier session for exactly these activations and training
    prompts (same key), verified by checksum; None when absent, stale or damaged (then recomputed).

    Both files are read under the vectors file's lock (the one `_save` holds while writing the pair),
    each parsed from the bytes its checksum vouched for, and both must carry `key`: a reader never gets
    one key's vectors with another key's subspaces."""
    vec_path, sub_path = _paths(profile, name)
    with file_lock(vec_path):
        vec = load_tensors_artifact(vec_path, key=key, what="saved vectors")
        sub = load_tensors_artifact(sub_path, key=key, what="saved subspaces") if vec is not None else None
    if vec is None or sub is None:
        return None
    (vt, meta), (st, _) = vec, sub
    vecs, norms = _split_norms(vt)
    # File names carry the dataset hash; the model's own name is in the metadata.
    model = meta["model"]["name"] if isinstance(meta.get("model"), dict) else name
    return (EmotionVectors(model, meta["layers"], meta["emotions"], vecs, norms, meta),
            EmotionSubspaces(model, meta["layers"], meta["emotions"], st, meta))


def _save(profile: Profile, name: str, vectors: EmotionVectors, subspaces: EmotionSubspaces, meta: dict) -> None:
    vec_path, sub_path = _paths(profile, name)
    with file_lock(vec_path):   # one lock for the pair: readers see both files of one key
        save_tensors_artifact(vec_path, {**vectors.tensors, **{f"neutral_norm/{k}": v for k, v in vectors.neutral_norm.items()}}, meta)
        save_tensors_artifact(sub_path, subspaces.tensors, meta)


def load_saved_vectors(path: str | Path) -> EmotionVectors:
    """Read vectors written by build_representations (for notebooks; no model needed)."""
    path = Path(path)
    found = load_tensors_artifact(path, what="saved vectors")
    if found is None:
        raise DatasetError(
            f"{path} is missing, damaged or does not match its checksum file {path.with_suffix('.json').name}; "
            "rebuild it with build_representations(model, profile) (it is recomputed automatically)")
    tensors, meta = found
    vecs, norms = _split_norms(tensors)
    return EmotionVectors(meta["model"]["name"], meta["layers"], meta["emotions"], vecs, norms, meta)


def emotion_vectors(model_name: str, profile: Profile) -> EmotionVectors:
    """The model's emotion vectors for this profile (built from training prompts, cached)."""
    return build_representations(model_name, profile).vectors
