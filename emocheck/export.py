"""Emotion vectors out of emocheck: llama.cpp control vectors (GGUF) and steering-vectors files.

    vec = direction_for_export(reps.vectors, "gratitude", layer=20)            # emocheck's own vector
    write_control_vector_gguf("gratitude.gguf", {llamacpp_layer(20, "hook_resid_post"): vec},
                              model_hint="llama", metadata={...})
    directions, meta = read_control_vector_gguf("gratitude.gguf")              # checked like llama.cpp does

Layer conventions (all three add a vector to the residual stream; they count layers differently):

* emocheck names sites like TransformerLens: ``blocks.L.hook_resid_post`` is the OUTPUT of decoder
  block L (0-based), ``blocks.L.hook_resid_pre`` its input (= the output of block L-1; the embeddings
  for L = 0).
* llama.cpp adds tensor ``direction.N`` to the output of block N (0-based, after the block's last
  residual add, ``l_out``), at every position of the prompt and of the generated tokens. N = 0 is
  rejected by its loader: the output of block 0 cannot be steered.
* steering-vectors (``SteeringVector(layer_activations={N: v})``, ``layer_type="decoder_block"``)
  adds ``v`` to the output of decoder block N (0-based), by default at every position.

So ``blocks.L.hook_resid_post`` is llama.cpp's and steering-vectors' layer L, and
``blocks.L.hook_resid_pre`` is their layer L - 1 (:func:`llamacpp_layer`, :func:`steering_vectors_layer`).
emocheck's own phase-5 patch adds the vector at the last prompt position and each generated token
(``PatchSpec``); the tools outside add it at every position (emocheck's ``patch_prompt=True``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emocheck.errors import ConfigError, DatasetError

GGUF_ARCH = "controlvector"
FORMATS = ("gguf", "steering-vectors")
STEERING_VECTORS_FORMAT = "emocheck-steering-vector"
SITES = ("hook_resid_post", "hook_resid_pre")

# HF config.model_type -> llama.cpp's general.architecture, where they differ (the hint is informative:
# llama.cpp's loader does not read it).
_GGUF_ARCH_NAMES = {"gemma3_text": "gemma3", "mistral": "llama", "gpt_neox": "gptneox"}


def _output_index(layer: int, site: str) -> int:
    if site not in SITES:
        raise ConfigError(f"site {site!r} cannot be exported; the residual sites are {', '.join(SITES)}")
    return int(layer) if site == "hook_resid_post" else int(layer) - 1


def llamacpp_layer(layer: int, site: str = "hook_resid_post") -> int:
    """llama.cpp's ``direction.N`` index for emocheck's ``blocks.<layer>.<site>``."""
    n = _output_index(layer, site)
    if n < 1:
        lowest = 1 if site == "hook_resid_post" else 2
        raise ConfigError(
            f"blocks.{layer}.{site} is the output of block {n} or the embeddings; llama.cpp cannot steer "
            f"there (its loader rejects direction.0). Export layer >= {lowest} for {site}")
    return n


def steering_vectors_layer(layer: int, site: str = "hook_resid_post") -> int:
    """steering-vectors' decoder-block index for emocheck's ``blocks.<layer>.<site>``."""
    n = _output_index(layer, site)
    if n < 0:
        raise ConfigError("blocks.0.hook_resid_pre is the embeddings, not a decoder block's output; "
                          "steering-vectors hooks block outputs: export hook_resid_post or a later layer")
    return n


def model_hint(model_type: str | None) -> str:
    """llama.cpp's architecture name for an HF ``model_type`` (stored as ``controlvector.model_hint``)."""
    model_type = str(model_type or "unknown")
    return _GGUF_ARCH_NAMES.get(model_type, model_type)


def direction_for_export(vectors, emotion: str, layer: int, *, kind: str = "vs_neutral",
                         site: str = "hook_resid_post", position: str = "last", subspaces=None,
                         subspace_k: int | None = None, scale: float = 1.0) -> torch.Tensor:
    """The float32 vector emocheck patches with: the emotion vector at (layer, site), optionally
    projected onto the emotion's top-``subspace_k`` subspace (``patching.directions.subspace_direction``,
    rescaled to the vector's norm), times ``scale``."""
    if not (isinstance(scale, (int, float)) and np.isfinite(scale)):
        raise ConfigError(f"scale must be a finite number, got {scale!r}")
    v = vectors.vector(emotion, layer, kind=kind, site=site, position=position)
    if subspace_k is not None:
        if subspaces is None:
            raise ConfigError("subspace_k needs the emotion subspaces (build_representations(...).subspaces)")
        from emocheck.patching.directions import subspace_direction

        v = subspace_direction(v, subspaces.components(emotion, layer, k=subspace_k, site=site, position=position))
    v = v.double() * float(scale)
    if not torch.isfinite(v).all() or float(v.norm()) == 0.0:
        raise ConfigError(f"the {emotion} vector at blocks.{layer}.{site} is zero or not finite; nothing to export")
    return v.float()


def _tmp_beside(path: Path) -> Path:
    import secrets

    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _replace_atomically(path: Path, write) -> Path:
    from emocheck.storage import make_dirs

    path = Path(path)
    make_dirs(path.parent)
    tmp = _tmp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_directions(directions: dict[int, object], minimum: int) -> dict[int, np.ndarray]:
    if not directions:
        raise ConfigError("no direction to export")
    out, dim = {}, None
    for layer, vec in sorted(directions.items()):
        arr = np.ascontiguousarray(np.asarray(vec.detach().cpu() if isinstance(vec, torch.Tensor) else vec,
                                              dtype=np.float32))
        if int(layer) < minimum:
            raise ConfigError(f"layer index {layer} is below {minimum}")
        if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
            raise ConfigError("every direction must be one 1-D vector of the model's width")
        if not np.isfinite(arr).all():
            raise ConfigError(f"the direction for layer {layer} is not finite")
        dim = arr.shape[0]
        out[int(layer)] = arr
    return out


def write_control_vector_gguf(path: str | Path, directions: dict[int, object], *, model_hint: str,
                              metadata: dict[str, str] | None = None) -> Path:
    """A llama.cpp control vector: ``general.architecture = controlvector``,
    ``controlvector.model_hint``, ``controlvector.layer_count`` (how many directions the file holds,
    as repeng writes it) and one F32 1-D tensor ``direction.<N>`` per llama.cpp layer N >= 1.
    ``metadata`` goes in as ``emocheck.<key>`` strings. Written atomically."""
    import gguf

    dirs = _check_directions(directions, minimum=1)

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(str(tmp), GGUF_ARCH)
        writer.add_string(f"{GGUF_ARCH}.model_hint", str(model_hint))
        writer.add_uint32(f"{GGUF_ARCH}.layer_count", len(dirs))
        for key, value in sorted((metadata or {}).items()):
            writer.add_string(f"emocheck.{key}", str(value))
        for layer, arr in dirs.items():
            writer.add_tensor(f"direction.{layer}", arr)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return _replace_atomically(Path(path), write)


def _field_value(reader, key: str):
    f = reader.get_field(key)
    if f is None or not len(f.parts):
        return None
    try:
        return f.contents()
    except AttributeError:   # older gguf: the last part holds the value
        raw = f.parts[-1]
        return bytes(raw).decode("utf-8") if raw.dtype == np.uint8 else raw.tolist()[0]


@dataclass
class ControlVectorFile:
    directions: dict[int, np.ndarray]           # llama.cpp layer N -> vector
    model_hint: str | None
    layer_count: int | None
    metadata: dict[str, str] = field(default_factory=dict)   # the emocheck.* keys


def read_control_vector_gguf(path: str | Path) -> ControlVectorFile:
    """Read a control vector back with the ``gguf`` package and apply llama.cpp's loader rules
    (``common_control_vector_load_one``): tensors named ``direction.<N>`` with N >= 1, F32, 1-D, all of
    one length. Raises DatasetError naming the rule a file breaks."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable GGUF file ({exc})") from None
    arch = _field_value(reader, "general.architecture")
    if arch != GGUF_ARCH:
        raise DatasetError(f"{path}: general.architecture is {arch!r}, not {GGUF_ARCH!r}: not a control vector")
    directions, dim = {}, None
    for t in reader.tensors:
        prefix, _, index = t.name.partition(".")
        if prefix != "direction" or not index.isdigit():
            raise DatasetError(f"{path}: tensor {t.name!r} is not named direction.<layer>")
        if int(index) == 0:
            raise DatasetError(f"{path}: direction.0 (llama.cpp rejects layer index 0)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise DatasetError(f"{path}: {t.name} is {t.tensor_type.name}, llama.cpp needs F32")
        arr = np.asarray(t.data, dtype=np.float32).reshape(-1)
        if len([d for d in t.shape if d != 1]) > 1:
            raise DatasetError(f"{path}: {t.name} is not 1-D")
        if dim is not None and arr.shape[0] != dim:
            raise DatasetError(f"{path}: {t.name} has {arr.shape[0]} values, the others {dim}")
        dim = arr.shape[0]
        directions[int(index)] = arr.copy()
    if not directions:
        raise DatasetError(f"{path} holds no direction tensor")
    meta = {}
    for key in reader.fields:
        if key.startswith("emocheck."):
            meta[key[len("emocheck."):]] = str(_field_value(reader, key))
    count = _field_value(reader, f"{GGUF_ARCH}.layer_count")
    return ControlVectorFile(directions, _field_value(reader, f"{GGUF_ARCH}.model_hint"),
                             None if count is None else int(count), meta)


def write_steering_vector(path: str | Path, directions: dict[int, object], *, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file that :func:`load_steering_vector` turns into a ``steering_vectors.SteeringVector``:
    tensors ``layer_activations.<N>`` (float32 [d], N = decoder block, 0-based) and string metadata
    (``format``, ``layer_type = decoder_block`` and the emocheck provenance). No pickle."""
    from safetensors.torch import save_file

    dirs = _check_directions(directions, minimum=0)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update(format=STEERING_VECTORS_FORMAT, layer_type="decoder_block")
    tensors = {f"layer_activations.{n}": torch.from_numpy(a.copy()) for n, a in dirs.items()}
    return _replace_atomically(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_steering_vector(path: str | Path) -> tuple[dict[int, torch.Tensor], dict[str, str]]:
    """({decoder block: vector}, metadata) from a file :func:`write_steering_vector` wrote."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise DatasetError(f"{path} is not a readable safetensors file ({exc})") from None
    if meta.get("format") != STEERING_VECTORS_FORMAT:
        raise DatasetError(f"{path} is not an emocheck steering-vector file (format {meta.get('format')!r})")
    out = {}
    for name, t in tensors.items():
        prefix, _, index = name.rpartition(".")
        if prefix != "layer_activations" or not index.isdigit():
            raise DatasetError(f"{path}: tensor {name!r} is not named layer_activations.<layer>")
        out[int(index)] = t
    return dict(sorted(out.items())), meta


def load_steering_vector(path: str | Path):
    """The file as a ``steering_vectors.SteeringVector`` (needs ``pip install --no-deps steering-vectors``)."""
    try:
        from steering_vectors import SteeringVector
    except ImportError:
        raise ConfigError("steering-vectors is not installed: `pip install --no-deps steering-vectors` "
                          "(its other dependencies come with emocheck)") from None
    layers, meta = read_steering_vector(path)
    return SteeringVector(layer_activations=layers, layer_type=meta.get("layer_type", "decoder_block"))


def export_vector(vectors, emotion: str, layer: int, out: str | Path, *, fmt: str = "gguf", model_type: str | None = None,
                  kind: str = "vs_neutral", site: str = "hook_resid_post", position: str = "last", subspaces=None,
                  subspace_k: int | None = None, scale: float = 1.0) -> Path:
    """Write one emotion direction of ``vectors`` (an EmotionVectors) to ``out`` in ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    index = llamacpp_layer(layer, site) if fmt == "gguf" else steering_vectors_layer(layer, site)
    vec = direction_for_export(vectors, emotion, layer, kind=kind, site=site, position=position, subspaces=subspaces,
                               subspace_k=subspace_k, scale=scale)
    meta = {"model": vectors.model, "emotion": emotion, "site": f"blocks.{layer}.{site}", "kind": kind,
            "position": position, "scale": repr(float(scale)), "subspace_k": "" if subspace_k is None else str(subspace_k),
            "vectors_key": str((vectors.meta or {}).get("key", "")),
            "layer_convention": "output of decoder block N (0-based)"}
    if fmt == "gguf":
        return write_control_vector_gguf(out, {index: vec}, model_hint=model_hint(model_type), metadata=meta)
    return write_steering_vector(out, {index: vec}, metadata={**meta, "model_type": str(model_type or "")})


def describe(path: str | Path) -> str:
    """One line per direction of an exported file (either format)."""
    path = Path(path)
    if path.suffix == ".gguf":
        cv = read_control_vector_gguf(path)
        dirs, hint = cv.directions, f"model_hint {cv.model_hint}, layer_count {cv.layer_count}"
    else:
        dirs, meta = read_steering_vector(path)
        hint = f"layer_type {meta.get('layer_type')}"
    rows = [f"  layer {n}: d = {np.asarray(v).shape[0]}, norm {float(np.linalg.norm(np.asarray(v, dtype=np.float64))):.4g}"
            for n, v in dirs.items()]
    return "\n".join([f"{path} ({hint})", *rows])
