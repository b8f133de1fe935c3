"""Loading a model from the Hugging Face hub or a local Hugging Face folder (a part of the registry).

The token (`HF_TOKEN`), offline mode and gated models each give one `ModelUnavailableError` that says
what to do; `_hub_revision` is the snapshot's commit hash, part of the model's identity.
"""
from __future__ import annotations

import os
from pathlib import Path
import torch

from emocheck.errors import ModelUnavailableError
from emocheck.models.spec import ModelSpec


def _hub_revision(spec: ModelSpec) -> str | None:
    if spec.source != "hub":
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.hub_id, "config.json")
        if isinstance(found, str):
            return Path(found).parent.name   # the snapshot's commit hash
    except Exception:
        pass
    return None


def _load_hf(spec: ModelSpec, dtype: torch.dtype, **load_kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    kwargs = {"token": token} if token else {}
    model_kwargs = dict(load_kw)
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        # huggingface_hub reads these variables once, at import; pass them on so an offline session
        # fails at once instead of waiting for network time-outs.
        kwargs["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.hub_id, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(spec.hub_id, dtype=dtype, **kwargs, **model_kwargs)
    except OSError as exc:
        raise ModelUnavailableError(_explain_hub_failure(spec, exc, bool(token))) from None
    return model, tokenizer, {"source": spec.source, "hub_id": spec.hub_id, "revision": _hub_revision(spec)}


def _explain_hub_failure(spec: ModelSpec, exc: Exception, has_token: bool) -> str:
    text = str(exc)
    if spec.source == "local-dir":
        return f"cannot load the local model folder {spec.hub_id!r}: {text.splitlines()[0]}"
    if "gated" in text.lower() or "401" in text or "403" in text or (spec.gated and not has_token):
        return (
            f"model {spec.name!r} ({spec.hub_id}) is gated on the Hugging Face hub: accept its licence on the hub, "
            "then set HF_TOKEN=<your token> (or run `huggingface-cli login`)"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in text.lower() or "connect" in text.lower()
    if offline:
        return (
            f"model {spec.name!r} ({spec.hub_id}) is not in the local Hugging Face cache and the hub cannot be reached. "
            "Download it once on a machine with the hub (`huggingface-cli download "
            f"{spec.hub_id}`) and copy the cache, or use an embedded model: gemma3-270m, smollm2-135m"
        )
    return f"cannot load model {spec.name!r} ({spec.hub_id}): {text.splitlines()[0] if text else type(exc).__name__}"
