"""Compute floors and resource plans: FLOPs per token, a measured GEMM rate, the phase-5 workload of a
profile, and the memory / time plan of a model (embedded or medium) from its config and a profile.

The compute floor of a piece of work is (tokens that must be processed x FLOPs per token) / the GEMM
rate measured in the same process; benchmarks print their measured time as a ratio to it.
FLOPs per token are the matrix multiplies only (2 x parameters touched): the decoder blocks for every
token, plus the unembedding for the tokens whose logits are needed (Gemma 3 270M's 262k-token head
is most of its cost, so a prefix that needs no logits is much cheaper than a generated token).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch


def _cfg(config, *names, default=None):
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return default


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = True

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        d = int(_cfg(text, "hidden_size", "n_embd"))
        heads = int(_cfg(text, "num_attention_heads", "n_head", "num_heads"))
        return cls(
            n_layers=int(_cfg(text, "num_hidden_layers", "n_layer", "num_layers")),
            d_model=d,
            d_ff=int(_cfg(text, "intermediate_size", "n_inner", default=4 * d) or 4 * d),
            n_heads=heads,
            n_kv_heads=int(_cfg(text, "num_key_value_heads", default=heads)),
            head_dim=int(_cfg(text, "head_dim", default=d // heads)),
            vocab=int(_cfg(text, "vocab_size")),
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", True)),
        )

    @property
    def gated_mlp(self) -> bool:
        return True   # conservative for the floor: llama/qwen/gemma MLPs have three matrices

    def block_params(self) -> int:
        attn = self.d_model * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = (3 if self.gated_mlp else 2) * self.d_model * self.d_ff
        return self.n_layers * (attn + mlp)

    def head_params(self) -> int:
        return self.d_model * self.vocab

    def flops_per_token(self, with_logits: bool = True) -> float:
        return 2.0 * (self.block_params() + (self.head_params() if with_logits else 0))

    def kv_bytes_per_token(self, bytes_per_elem: int) -> int:
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_elem

    def weight_bytes(self, bytes_per_elem: int) -> int:
        embeddings = 0 if self.tied_embeddings else self.head_params()
        return (self.block_params() + self.head_params() + embeddings) * bytes_per_elem


def token_flops(loaded, with_logits: bool = True, blocks: int | None = None) -> float:
    """Matrix-multiply FLOPs of one token through `blocks` decoder blocks (default all) of a loaded model,
    plus the unembedding when its logits are needed (what timing records count as a phase's work)."""
    shape = getattr(loaded, "_emocheck_shape", None)
    if shape is None:
        shape = ModelShape.from_config(loaded.model.config)
        try:
            loaded._emocheck_shape = shape
        except AttributeError:                # a frozen or slotted wrapper: recompute next time
            pass
    per_block = shape.block_params() / shape.n_layers
    n = shape.n_layers if blocks is None else min(int(blocks), shape.n_layers)
    return 2.0 * (per_block * n + (shape.head_params() if with_logits else 0))


def gemm_rate(d_in: int, d_out: int, rows: int = 128, dtype=torch.float32, device="cpu",
              seconds: float = 0.5) -> float:
    """Measured FLOP/s of [rows, d_in] @ [d_in, d_out] in this process (best of repeated runs)."""
    a = torch.randn(rows, d_in, dtype=dtype, device=device)
    b = torch.randn(d_in, d_out, dtype=dtype, device=device)
    flops = 2.0 * rows * d_in * d_out
    for _ in range(3):
        a @ b
    best, end = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < end:
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / 5)
    return flops / best


@dataclass(frozen=True)
class Workload:
    """Tokens a phase-5 run must process: one prefill per prompt (no logits), decode and scoring
    tokens per row (with logits)."""
    prompts: int
    rows: int
    prefix_tokens: int
    decode_tokens: int
    scoring_tokens: int

    def flops(self, shape: ModelShape) -> float:
        return (self.prefix_tokens * shape.flops_per_token(False)
                + (self.decode_tokens + self.scoring_tokens) * shape.flops_per_token(True))

    def floor_seconds(self, shape: ModelShape, flop_rate: float) -> float:
        return self.flops(shape) / flop_rate


#: Conditions per emotion of each secondary condition of the phase-5 design, run on the design's
#: secondary prompts (default half of the judged prompts; emocheck.patching.conditions.claim_conditions):
#: the random-subspace null comes with the subspace condition.
_SECONDARY_CONDITIONS = {"negated": 1, "specific": 1, "subspace": 2, "prompt": 1, "dose_matched": 1}


def phase5_conditions(profile, n_emotions: int = 3, n_sweep_layers: int = 3) -> dict:
    """Rows per prompt of the phase-5 design (emocheck.patching.experiment): the tuning sweep (baseline +
    every layer x alpha x (emotion vectors + a fresh random direction)) and the judged claims (baseline +
    per emotion: the vector on every prompt, a fresh random and a label-permuted draw on the null prompts
    (default all), and the profile's secondary conditions on the secondary prompts (default half))."""
    from dataclasses import asdict

    st = asdict(profile.patching)
    judged = st.get("judged_prompts") or profile.generation_prompts
    null_frac = min(1.0, (st.get("null_prompts") or judged) / judged)
    sec_n = st.get("secondary_prompts")
    sec_frac = min(null_frac, (sec_n / judged) if sec_n else 0.5)
    n_layers = min(n_sweep_layers, len(st["fractions"]))
    sweep = 1 + n_layers * len(st["alphas"]) * (n_emotions + 1)
    claims = 1 + n_emotions * (1 + 2 * null_frac + sec_frac * sum(_SECONDARY_CONDITIONS.get(c, 0) for c in st["secondary"]))
    return {"sweep": sweep, "claims": claims, "tuning_prompts": st["tuning_prompts"], "judged_prompts": judged}


def phase5_workload(profile, prompt_tokens: float = 31.0, mean_new_tokens: float | None = None,
                    n_emotions: int = 3) -> Workload:
    """The phase-5 work of a profile (sweep on tuning prompts + claims on judged prompts)."""
    c = phase5_conditions(profile, n_emotions)
    new = profile.new_tokens if mean_new_tokens is None else mean_new_tokens
    prompts = c["tuning_prompts"] + c["judged_prompts"]
    rows = int(round(c["sweep"] * c["tuning_prompts"] + c["claims"] * c["judged_prompts"]))
    return Workload(prompts, rows, int(prompts * (prompt_tokens - 1)), int(rows * new), int(rows * new))


def model_plan(config, profile, *, dtype_bytes: int = 2, gpu_flops: float = 400e12, gpu_memory: float = 80e9,
               bandwidth: float = 2e12, efficiency: float = 0.3, rows: int = 256, prompt_tokens: float = 31.0,
               name: str = "") -> dict:
    """Memory and time plan of one model for a profile's phase 5 on GPUs.

    Memory: weights (dtype_bytes each) + KV cache of `rows` concurrent rows (prompt + new tokens) +
    one row of float32 logits per row; GPUs: how many `gpu_memory` devices `device_map="auto"` needs
    (weights spread, 20% head-room). Time: the workload's FLOPs at `efficiency` x `gpu_flops` (bf16
    dense peak; 0.3 is a realistic generation efficiency at large batch) plus, for every decode step
    of every batch, one read of the weights at `bandwidth` bytes/s (small batches are memory-bound).
    """
    shape = ModelShape.from_config(config)
    work = phase5_workload(profile, prompt_tokens)
    weights = shape.weight_bytes(dtype_bytes)
    kv = rows * (prompt_tokens + profile.new_tokens) * shape.kv_bytes_per_token(dtype_bytes)
    logits = rows * shape.vocab * 4
    total = weights + kv + logits
    gpus = max(1, math.ceil(total * 1.2 / gpu_memory))
    decode_steps = math.ceil(work.rows / rows) * (profile.new_tokens + 1)
    seconds = work.flops(shape) / (gpu_flops * efficiency) + decode_steps * weights / gpus / bandwidth
    return {"model": name, "profile": profile.name, "params_b": shape.weight_bytes(1) / 1e9,
            "weights_gb": weights / 1e9, "kv_cache_gb": kv / 1e9, "logits_gb": logits / 1e9,
            "total_gb": total / 1e9, "gpus_needed": gpus, "rows_per_batch": rows,
            "phase5_rows": work.rows, "phase5_tflop": work.flops(shape) / 1e12,
            "phase5_minutes": seconds / 60, "assumptions": {"dtype_bytes": dtype_bytes, "gpu_flops": gpu_flops,
                                                             "gpu_memory": gpu_memory, "efficiency": efficiency,
                                                             "bandwidth": bandwidth},
            "shape": asdict(shape)}


#: The seed's medium models, from their published configs (the hub is not needed to plan).
MEDIUM_MODELS: dict[str, ModelShape] = {
    "llama3-8b": ModelShape(n_layers=32, d_model=4096, d_ff=14336, n_heads=32, n_kv_heads=8, head_dim=128,
                            vocab=128256, tied_embeddings=False),
    "qwen3-8b": ModelShape(n_layers=36, d_model=4096, d_ff=12288, n_heads=32, n_kv_heads=8, head_dim=128,
                           vocab=151936, tied_embeddings=False),
    "gemma3-12b": ModelShape(n_layers=48, d_model=3840, d_ff=15360, n_heads=16, n_kv_heads=8, head_dim=256,
                             vocab=262208, tied_embeddings=True),
}


class _ShapeConfig:
    """Lets model_plan take a ModelShape where it expects a config."""

    def __init__(self, shape: ModelShape):
        self.hidden_size, self.intermediate_size = shape.d_model, shape.d_ff
        self.num_hidden_layers, self.num_attention_heads = shape.n_layers, shape.n_heads
        self.num_key_value_heads, self.head_dim, self.vocab_size = shape.n_kv_heads, shape.head_dim, shape.vocab
        self.tie_word_embeddings = shape.tied_embeddings


def medium_model_plans(profile, **kw) -> list[dict]:
    """model_plan for each of the seed's medium models (the memory and time plan in docs/benchmarks.md)."""
    return [model_plan(_ShapeConfig(shape), profile, name=name, **kw) for name, shape in MEDIUM_MODELS.items()]
