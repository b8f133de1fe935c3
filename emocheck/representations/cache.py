"""On-disk, lazily filled cache of extracted activations.

Layout: `results/<profile>/activations/<model>/<key>.safetensors` (tensors named
`<position>/blocks.<L>.<site>`) beside `<key>.json` (what was extracted, for which prompt ids, and the
sha256 of the tensor file). The key is a hash of everything that determines the numbers: the model's
identity (GGUF checksum or hub id and revision, dtype), the prompts' ids/texts/triggers, the position
rules, layers and sites, the extraction code version and the transformers/torch versions.

Reads verify the tensor file against the checksum in the JSON; a missing, truncated or corrupt file
is rebuilt, never trusted. Written and read by the storage rule (emocheck.storage.write_artifact /
read_artifact): the JSON is written after the tensors, both atomically, so a crash leaves either a
complete entry or one that fails verification; the tensors are parsed from the very bytes that were
checked. A file lock makes concurrent xdist workers
compute a given entry once; the others wait and read it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from emocheck.representations.extraction import RESID_SITES, extract_activations
from emocheck.models.registry import LoadedModel
from emocheck.errors import ConfigError
from emocheck.storage import file_lock, load_tensors_artifact, save_tensors_artifact, stable_hash

log = logging.getLogger(__name__)

EXTRACTION_CODE_VERSION = "extract-v2"   # v2: batches sorted by length (values equal up to rounding)


@dataclass
class ActivationSet:
    model: str
    ids: list[str]
    tensors: dict[str, torch.Tensor]     # '<position>/blocks.<L>.<site>' -> [n, d]
    meta: dict = field(default_factory=dict)

    def get(self, layer: int, site: str = "hook_resid_post", position: str = "last") -> torch.Tensor:
        name = f"{position}/blocks.{layer}.{site}"
        if name not in self.tensors:
            raise KeyError(f"{name} was not extracted; available e.g. {next(iter(self.tensors))}")
        return self.tensors[name]

    @property
    def layers(self) -> list[int]:
        return list(self.meta["layers"])


def activation_key(identity: dict, ids, texts, triggers, positions, layers, sites) -> str:
    import transformers

    return stable_hash({
        "model": identity,
        "prompts": stable_hash([list(ids), list(texts), list(triggers) if triggers is not None else None], 32),
        "positions": list(positions), "layers": list(layers), "sites": list(sites),
        "code": EXTRACTION_CODE_VERSION,
        # Kernels change in the last bits between releases; numbers are reproducible per version pair.
        "versions": [torch.__version__.split("+")[0], transformers.__version__],
    }, 24)


def _verify_and_load(tensor_path: Path, meta_path: Path) -> tuple[dict, dict] | None:
    """The entry's tensors and metadata when the checksum vouches for them and they are complete;
    None (rebuild) otherwise. The storage rule reads the bytes once and parses those bytes."""
    found = load_tensors_artifact(tensor_path, meta_path=meta_path, what="activation cache")
    if found is None:
        return None
    tensors, meta = found
    try:
        n = len(meta["ids"])
        if set(tensors) != set(meta["tensor_names"]) or any(t.shape[0] != n for t in tensors.values()):
            log.warning("activation cache %s is incomplete; rebuilding", tensor_path.name)
            return None
    except (KeyError, TypeError) as exc:
        log.warning("activation cache %s has a malformed record (%s); rebuilding", tensor_path.name, exc)
        return None
    return tensors, meta


def _check_prompts(ids, texts, triggers) -> None:
    if len(texts) == 0:
        raise ConfigError("no prompts to extract activations for: pass at least one prompt")
    if len(ids) != len(texts):
        raise ConfigError(f"{len(ids)} prompt ids for {len(texts)} texts: give one id per prompt text")
    if triggers is not None and len(triggers) != len(texts):
        raise ConfigError(f"{len(triggers)} triggers for {len(texts)} texts: give one trigger per prompt (or none)")
    if len(set(ids)) != len(ids):
        raise ConfigError("prompt ids are not unique: every prompt needs its own id")


_MEMO: dict[str, ActivationSet] = {}


def cached_activations(
    model: LoadedModel | Callable[[], LoadedModel],
    identity: dict,
    ids: list[str],
    texts: list[str],
    triggers: list[str] | None,
    cache_dir: Path,
    *,
    positions=("trigger_last", "last", "mean"),
    layers=None,
    n_layers: int | None = None,
    sites=RESID_SITES,
    batch_size: int = 16,
    progress: bool = True,
) -> ActivationSet:
    """Activations for the prompts, from the cache when present and valid, else extracted and stored.

    `model` may be a zero-argument loader so that a warm cache never loads the model at all;
    `identity` (models.model_identity) and `n_layers` must then describe it without loading.
    """
    _check_prompts(ids, texts, triggers)
    if layers is None:
        if n_layers is None:
            if callable(model) and not isinstance(model, LoadedModel):
                model = model()
            n_layers = model.n_layers
        layers = list(range(n_layers))
    key = activation_key(identity, ids, texts, triggers, positions, layers, sites)
    if key in _MEMO:
        return _MEMO[key]
    cache_dir = Path(cache_dir)
    tensor_path = cache_dir / f"{key}.safetensors"
    meta_path = cache_dir / f"{key}.json"
    with file_lock(tensor_path):
        found = _verify_and_load(tensor_path, meta_path)
        if found is None:
            if callable(model) and not isinstance(model, LoadedModel):
                model = model()
            acts = extract_activations(model, texts, triggers, positions=positions, layers=layers, sites=sites,
                                       batch_size=batch_size, progress=progress)
            tensors = {f"{p}/{name}": t for p, d in acts.items() for name, t in d.items()}
            meta = save_tensors_artifact(tensor_path, tensors, {
                "key": key, "model_identity": identity, "ids": list(ids), "positions": list(positions),
                "layers": list(layers), "sites": list(sites), "tensor_names": sorted(tensors),
                "code": EXTRACTION_CODE_VERSION,
            }, meta_path=meta_path)
        else:
            tensors, meta = found
    result = ActivationSet(identity.get("name", "?"), list(meta["ids"]), tensors, meta)
    _MEMO[key] = result
    return result


def clear_memo() -> None:
    _MEMO.clear()
