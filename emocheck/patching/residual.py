"""Multi-token residual patching during generation (phase 5, pillar T1), implemented with nnsight.

A patch is data (:class:`PatchSpec`); the directions it adds are tensors passed beside it, one per
layer and optionally one per batch row (so several conditions share one batched generation, with a
zero vector for the unpatched baseline: ``x + 0.0 == x`` exactly).

Conventions (the same in this nnsight implementation and in the plain forward-hook reference,
``emocheck.patching_hooks``, which must give identical tokens):

* **Steps.** Generation step ``s`` is the forward pass that produces generated token ``s``. Step 0 is
  the prompt pass: there the vector lands on the LAST prompt position (and, with
  ``patch_prompt=True``, on every real prompt position; pads are never touched). Step ``s >= 1``
  processes one token (the KV cache holds the rest), the previously generated token, and the vector
  lands on it. ``window=(start, stop)`` patches steps ``start <= s < stop`` and no others, so it
  shapes generated tokens ``start..stop-1`` directly and later ones only through the KV cache.
* **Update.** ``h[:, -1] += scale_s * alpha * v`` in place at the site (the block's input for
  ``hook_resid_pre``, its output for ``hook_resid_post``), with ``scale_s = 1`` (``fixed``, the
  project's schedule) or ``decay ** (s - start)`` (``exp_decay``).
* **Scale.** ``alpha`` multiplies the vector as given. The experiment passes CAA-style emotion
  vectors ``mean(emotion) - mean(neutral)`` at that layer and site, so ``alpha = 1`` moves a residual
  by the average emotion-vs-neutral displacement on every model and layer; random controls are drawn
  at exactly the same norm (see ``emocheck.patching.experiment``).
* **Padding.** Prompts are left-padded (the tokenizer's side is restored afterwards); HF and nnsight
  both derive position ids from the attention mask, so a prompt's tokens do not depend on what it is
  batched with beyond float rounding.
* **EOS.** By default a row stops at EOS (HF then pads it); the batch stops when every row has. A
  window that the generation never reaches is simply not applied: the nnsight loop is cut short and
  the result is read in a separate invoke, so nothing after the loop is lost (nnsight issue #488).
  ``stop_at_eos=False`` suppresses EOS (``min_new_tokens = max_new_tokens``).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

import torch

from emocheck import timing
from emocheck.models.architectures import check_layer
from emocheck.errors import ConfigError

RESID_SITES = ("hook_resid_pre", "hook_resid_post")
SCHEDULES = ("fixed", "exp_decay")
#: The project's one alpha schedule (see the module doc): constant over the window.
DEFAULT_SCHEDULE = "fixed"


@dataclass(frozen=True)
class PatchSpec:
    """Everything that defines a patched generation except the direction tensors themselves."""

    layers: tuple[int, ...] = (0,)
    site: str = "hook_resid_post"
    alpha: float = 1.0
    window: tuple[int, int] = (0, 5)          # generated-token (step) indices [start, stop)
    schedule: str = DEFAULT_SCHEDULE           # "fixed" | "exp_decay"
    decay: float = 0.5                         # exp_decay: scale at step s is decay ** (s - start)
    patch_prompt: bool = False                 # also patch every real prompt position at step 0
    max_new_tokens: int = 30
    do_sample: bool = False                    # greedy by default
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None                    # required when sampling
    stop_at_eos: bool = True
    model: str | None = None                   # descriptive (recorded with results)
    direction: str = ""                        # descriptive label of the direction(s)

    def __post_init__(self):
        layers = self.layers
        if isinstance(layers, int):
            layers = (layers,)
        object.__setattr__(self, "layers", tuple(int(x) for x in layers))
        object.__setattr__(self, "window", tuple(int(x) for x in self.window))

    # ------------------------------------------------------------------ validation
    def validate(self, n_layers: int | None = None) -> "PatchSpec":
        if not self.layers:
            raise ConfigError("PatchSpec.layers is empty: give at least one layer")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"PatchSpec.layers {self.layers} repeats a layer")
        for layer in self.layers:
            check_layer(layer, n_layers)
            if layer < 0:
                raise ConfigError(f"layer {layer} is out of range: layers are 0-based and non-negative")
        if self.site not in RESID_SITES:
            raise ConfigError(f"unknown patch site {self.site!r}; residual patching supports {', '.join(RESID_SITES)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown alpha schedule {self.schedule!r}; one of {', '.join(SCHEDULES)}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)):
            raise ConfigError(f"alpha must be a finite number, got {self.alpha!r}")
        if self.schedule == "exp_decay" and not 0 < self.decay <= 1:
            raise ConfigError(f"decay must be in (0, 1] for the exp_decay schedule, got {self.decay}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if len(self.window) != 2:
            raise ConfigError(f"window must be (start, stop), got {self.window!r}")
        start, stop = self.window
        if not 0 <= start < stop:
            raise ConfigError(f"patch window {self.window} is empty or negative: need 0 <= start < stop")
        if stop > self.max_new_tokens:
            raise ConfigError(
                f"patch window {self.window} reaches past the generation length: generated tokens are "
                f"0..{self.max_new_tokens - 1} (max_new_tokens={self.max_new_tokens})"
            )
        if self.do_sample and self.seed is None:
            raise ConfigError("sampling (do_sample=True) needs an explicit seed for reproducibility")
        return self

    # ------------------------------------------------------------------ schedule
    def step_scale(self, step: int) -> float:
        """Multiplier of the direction at generation step `step` (0 outside the window)."""
        start, stop = self.window
        if not start <= step < stop:
            return 0.0
        if self.schedule == "fixed":
            return float(self.alpha)
        return float(self.alpha) * float(self.decay) ** (step - start)

    def patched_steps(self) -> list[int]:
        steps = set(range(*self.window))
        if self.patch_prompt:
            steps.add(0)
        return sorted(steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["window"] = list(self.window)
        return d

    def replace(self, **kw) -> "PatchSpec":
        return replace(self, **kw)


@dataclass
class GenerationResult:
    """Output of a (patched) generation. `new_tokens` is [B, T] (pad after a row's EOS)."""

    prompts: list[str]
    input_ids: torch.Tensor          # [B, P] left-padded prompt ids
    attention_mask: torch.Tensor     # [B, P]
    new_tokens: torch.Tensor         # [B, T], T <= max_new_tokens (the batch may stop early)
    lengths: torch.Tensor            # [B] generated tokens up to and including the first EOS
    hit_eos: torch.Tensor            # [B] bool
    texts: list[str]                 # continuation text (up to EOS, special tokens skipped)
    spec: PatchSpec
    meta: dict = field(default_factory=dict)

    @property
    def steps_run(self) -> int:
        return int(self.new_tokens.shape[1])


# ---------------------------------------------------------------------------------------- helpers


def eos_ids(loaded) -> set[int]:
    gc = getattr(loaded.model, "generation_config", None)
    ids = getattr(gc, "eos_token_id", None) if gc is not None else None
    if ids is None:
        ids = getattr(loaded.model.config, "eos_token_id", None)
    if ids is None:
        ids = loaded.tokenizer.eos_token_id
    if ids is None:
        return set()
    return set(ids) if isinstance(ids, (list, tuple)) else {int(ids)}


@contextlib.contextmanager
def left_padding(tokenizer):
    old = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = old


def tokenize_prompts(loaded, prompts: list[str]):
    if isinstance(prompts, str) or not prompts:
        raise ConfigError("prompts must be a non-empty list of strings")
    with left_padding(loaded.tokenizer) as tok:
        enc = tok(list(prompts), return_tensors="pt", padding=True)
    return enc["input_ids"].to(loaded.device), enc["attention_mask"].to(loaded.device)


def prepare_directions(loaded, spec: PatchSpec, directions, batch: int) -> dict[int, torch.Tensor]:
    """Normalise `directions` to {layer: [B, d] tensor in the model's dtype/device}.

    `directions` may be one tensor ([d] shared by every row, or [B, d] one per row) used at every
    patched layer, or a mapping layer -> such a tensor.
    """
    if isinstance(directions, Mapping):
        missing = [layer for layer in spec.layers if layer not in directions]
        if missing:
            raise ConfigError(f"no direction given for patched layer(s) {missing}")
        per_layer = {layer: directions[layer] for layer in spec.layers}
    else:
        per_layer = {layer: directions for layer in spec.layers}
    out = {}
    for layer, v in per_layer.items():
        v = torch.as_tensor(v)
        if v.dim() == 1:
            v = v.unsqueeze(0).expand(batch, -1)
        if v.dim() != 2 or v.shape[0] != batch or v.shape[1] != loaded.d_model:
            raise ConfigError(
                f"direction for layer {layer} has shape {tuple(v.shape)}; expected [{loaded.d_model}] or "
                f"[{batch}, {loaded.d_model}] (one row per prompt)"
            )
        if not torch.isfinite(v).all():
            raise ConfigError(f"direction for layer {layer} contains NaN or inf")
        # float32 at least whatever the model dtype: a bf16 delta loses small patches (issue 8)
        out[layer] = v.to(device=loaded.device, dtype=torch.promote_types(loaded.dtype, torch.float32)).contiguous()
    return out


def step_deltas(spec: PatchSpec, dirs: dict[int, torch.Tensor]) -> dict[int, dict[int, torch.Tensor]]:
    """{step: {layer: [B, d] delta}} for every step that patches the last position.

    Computed once and shared by both implementations so the arithmetic is bit-identical.
    """
    out = {}
    for step in range(*spec.window):
        scale = spec.step_scale(step)
        out[step] = {layer: (v * scale) for layer, v in dirs.items()}
    return out


def prompt_deltas(spec: PatchSpec, dirs: dict[int, torch.Tensor], attention_mask: torch.Tensor):
    """{layer: [B, P, d]} added to every prompt position at step 0 (patch_prompt=True), 0 on pads.

    The last prompt position gets the step-0 window scale when step 0 is in the window, else alpha.
    """
    if not spec.patch_prompt:
        return None
    scale = spec.step_scale(0) if spec.window[0] == 0 else float(spec.alpha)
    mask = attention_mask.to(next(iter(dirs.values())).dtype)[:, :, None]
    return {layer: (v * scale)[:, None, :] * mask for layer, v in dirs.items()}


def generation_kwargs(loaded, spec: PatchSpec) -> dict:
    kw = dict(max_new_tokens=spec.max_new_tokens, do_sample=spec.do_sample,
              pad_token_id=loaded.tokenizer.pad_token_id)
    if spec.do_sample:
        kw.update(temperature=spec.temperature, top_p=spec.top_p, top_k=None)
    else:
        # Neutralise sampling defaults a generation_config may carry (Gemma's has top_k/top_p).
        kw.update(temperature=None, top_p=None, top_k=None)
    if not spec.stop_at_eos:
        kw["min_new_tokens"] = spec.max_new_tokens
    return kw


def finish(loaded, prompts, input_ids, attention_mask, sequences, spec, meta) -> GenerationResult:
    new = sequences[:, input_ids.shape[1]:].detach().cpu()
    eos = sorted(eos_ids(loaded))
    batch, steps = new.shape
    lengths = torch.full((batch,), steps, dtype=torch.long)
    hit = torch.zeros(batch, dtype=torch.bool)
    if eos and steps and spec.stop_at_eos:
        is_eos = torch.isin(new, torch.tensor(eos))
        any_eos = is_eos.any(1)
        first = is_eos.int().argmax(1)
        lengths = torch.where(any_eos, first + 1, lengths)
        hit = any_eos
    texts = [loaded.tokenizer.decode(new[i, : lengths[i]].tolist(), skip_special_tokens=True) for i in range(batch)]
    return GenerationResult(list(prompts), input_ids.cpu(), attention_mask.cpu(), new, lengths, hit, texts, spec, meta)


def _seed(spec: PatchSpec) -> None:
    if spec.seed is not None:
        torch.manual_seed(spec.seed)


# ---------------------------------------------------------------------------------------- nnsight


def remote_setting() -> bool | str:
    """``$EMOCHECK_REMOTE`` (set by ``--emocheck-remote``): '' / '0' = local, '1' = NDIF (nnsight's
    configured host and API key), 'local' = nnsight's local simulation of a remote run (the trace is
    serialised and deserialised as it would be for NDIF, then run here), or a host URL."""
    import os

    value = os.environ.get("EMOCHECK_REMOTE", "").strip()
    if value in ("", "0", "false", "no"):
        return False
    return True if value in ("1", "true", "yes", "ndif") else value


def generate_patched_nnsight(loaded, prompts: list[str], spec: PatchSpec, directions=None,
                             remote: bool | str = False) -> GenerationResult:
    """Patched generation with nnsight's generation interventions (one `lm.generate` trace).

    ``remote`` runs the same trace through nnsight's remote execution: True = NDIF (the model must be
    one NDIF hosts, loaded by its hub id; nnsight's API key configured), "local" = serialise the
    intervention graph exactly as for NDIF and run it in this process (how it is tested offline)."""
    from emocheck.models.architectures import resolve

    spec.validate(loaded.n_layers)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    batch = input_ids.shape[0]
    lm = loaded.lm
    layers_env = resolve(lm, loaded.arch.layers)
    kw = generation_kwargs(loaded, spec)
    patch = directions is not None
    if patch:
        dirs = prepare_directions(loaded, spec, directions, batch)
        deltas = step_deltas(spec, dirs)
        pdeltas = prompt_deltas(spec, dirs, attention_mask)
        steps = spec.patched_steps()
    side = "input" if spec.site == "hook_resid_pre" else "output"
    _seed(spec)
    with torch.no_grad(), warnings.catch_warnings(), timing.phase("generation", model=loaded.name):
        # Expected when every row stopped at EOS before the window ended (see module doc).
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        if remote:
            kw["remote"] = remote
        with lm.generate(**kw) as tracer:
            with tracer.invoke({"input_ids": input_ids, "attention_mask": attention_mask}):
                if patch:
                    for step in tracer.iter[steps]:
                        for layer in sorted(spec.layers):
                            env = layers_env[layer]
                            h = env.input if side == "input" else env.output
                            if isinstance(h, tuple):      # transformers < 5 returns tuples
                                h = h[0]
                            if step == 0 and pdeltas is not None:
                                h[:, :] += pdeltas[layer]
                            elif step in deltas:
                                h[:, -1] += deltas[step][layer]
            with tracer.invoke():
                sequences = tracer.result.save()
    meta = {"impl": "nnsight"} if not remote else {"impl": "nnsight", "remote": remote}
    return finish(loaded, prompts, input_ids, attention_mask, sequences, spec, meta)


def generate_plain(loaded, prompts: list[str], spec: PatchSpec) -> GenerationResult:
    """Unpatched Hugging Face `generate` with the same tokenisation and decoding settings."""
    spec.validate(loaded.n_layers)
    input_ids, attention_mask = tokenize_prompts(loaded, prompts)
    _seed(spec)
    with torch.no_grad():
        seqs = loaded.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                     **generation_kwargs(loaded, spec))
    return finish(loaded, prompts, input_ids, attention_mask, seqs, spec, {"impl": "hf"})
