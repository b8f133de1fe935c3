"""A run's time per phase and model beside its compute floor: where the time went and how far each
phase is from what its work must cost.

The input is an ``emocheck.timing.summary`` (a session's ``statistics/session.json`` holds one under
``timing.phases``; the timing files under ``results/<profile>/timing/`` give the same). Phases that
count their work (extraction, generation, fluency: ``tokens`` and ``flops``) get a floor = FLOPs /
the float32 GEMM rate of the model's shapes (``emocheck.compute.gemm_rate``, measured in the calling
process); the ratio is wall time / floor. Generation's ratio is that of generation + fluency
together (the phase-5 rows: prefix, decode, continuation scoring).

    from emocheck import breakdown
    summ = breakdown.load_summary("results/ci/statistics/session.json")
    rows = breakdown.phase_rows(summ, breakdown.measure_rates(models_of(summ)))
    print(breakdown.format_rows(rows))
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from emocheck.errors import ConfigError

GENERATION_PHASES = ("generation", "fluency")


def load_summary(path: str | os.PathLike, profile: str | None = None) -> dict:
    """The timing summary of a session: `path` is its session.json, its statistics folder, or a
    results root (then `profile` names the profile and the timing files are read)."""
    from emocheck import timing

    p = Path(path)
    if p.is_dir() and (p / "session.json").is_file():
        p = p / "session.json"
    if p.is_file():
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{p} is not a readable session.json ({exc}); give a session's statistics/session.json")
        summ = ((data.get("timing") or {}).get("phases")) if isinstance(data, dict) else None
        if not isinstance(summ, dict) or "phases" not in summ:
            raise ConfigError(f"{p} has no timing summary (timing.phases): it was written by an emocheck without "
                              "per-phase timing; run the session again")
        summ = dict(summ)
        summ["session_wall_s"] = (data.get("timing") or {}).get("session_wall_s") or {}
        summ["workers"] = data.get("workers")
        return summ
    if p.is_dir() and profile:
        summ = timing.summary(p, profile)
        if not summ["phases"]:
            raise ConfigError(f"no timing files under {p / profile / 'timing'}; run a session first")
        return summ
    raise ConfigError(f"{p}: give a session.json, a statistics folder, or a results root with --profile")


def models_of(summ: dict) -> list[str]:
    """The models named in a summary (without the pair names of cross-model phases)."""
    names = {m for p in summ["phases"].values() for m in p["models"] if m}
    return sorted(n for n in names if "_vs_" not in n)


def model_shapes(models) -> dict:
    """{model: emocheck.compute.ModelShape} from each model's config (names that are not models are left out)."""
    from emocheck.compute import ModelShape
    from emocheck.models.registry import model_config

    out = {}
    for name in models:
        try:
            out[name] = ModelShape.from_config(model_config(name))
        except Exception:  # noqa: BLE001 - a name that is not a model (e.g. a test's toy name) has no floor
            continue
    return out


def measure_rates(models, seconds: float = 0.5, shapes: dict | None = None) -> dict[str, float]:
    """{model: float32 GEMM FLOP/s of its [128, d_model] x [d_model, d_ff] shape, measured now}."""
    from emocheck.compute import gemm_rate

    shapes = model_shapes(models) if shapes is None else shapes
    return {name: gemm_rate(s.d_model, s.d_ff, rows=128, seconds=seconds) for name, s in shapes.items()}


def _flops(phase: str, m: dict, shape) -> tuple[float, bool]:
    """(FLOPs, estimated?): the counted FLOPs, else - for generation / fluency records of an emocheck that
    counted tokens only - tokens x FLOPs per token with logits (a prefix token needs none, so this
    floor is a little high and the ratio a little low)."""
    if m.get("flops"):
        return float(m["flops"]), False
    if shape is not None and m.get("tokens") and phase in GENERATION_PHASES:
        return float(m["tokens"]) * shape.flops_per_token(True), True
    return 0.0, False


def phase_rows(summ: dict, rates: dict[str, float], shapes: dict | None = None) -> list[dict]:
    """One row per (phase, model), largest self time first: seconds (self wall), cpu_seconds,
    tokens, gflop, floor_seconds and ratio_to_floor (None where the phase does not count its work or
    the model has no rate), share of the total. `shapes` ({model: ModelShape}) lets token-only
    generation records get a floor (flops_estimated)."""
    total = float(summ.get("total_seconds") or 0.0) or 1e-12
    rows = []
    for name, p in summ["phases"].items():
        for model, m in p["models"].items():
            rate = rates.get(model)
            flops, estimated = _flops(name, m, (shapes or {}).get(model))
            floor = flops / rate if rate and flops else None
            rows.append({"phase": name, "model": model, "seconds": m["seconds"], "cpu_seconds": m.get("cpu_seconds"),
                         "calls": m["calls"], "tokens": m.get("tokens") or 0, "gflop": flops / 1e9,
                         "flops_estimated": estimated, "floor_seconds": floor,
                         "ratio_to_floor": m["seconds"] / floor if floor else None, "share": m["seconds"] / total})
    return sorted(rows, key=lambda r: -r["seconds"])


def generation_ratio(summ: dict, rates: dict[str, float], model: str, shapes: dict | None = None) -> dict | None:
    """Generation + fluency of one model against their floor (None when not recorded)."""
    secs = flops = 0.0
    for name in GENERATION_PHASES:
        m = summ["phases"].get(name, {}).get("models", {}).get(model)
        if m:
            secs += m["seconds"]
            flops += _flops(name, m, (shapes or {}).get(model))[0]
    rate = rates.get(model)
    if not flops or not rate:
        return None
    return {"model": model, "seconds": secs, "floor_seconds": flops / rate, "ratio_to_floor": secs * rate / flops,
            "gemm_gflops": rate / 1e9}


def format_rows(rows: list[dict], min_seconds: float = 0.05) -> str:
    """A fixed-width table of phase_rows (rows under `min_seconds` left out)."""
    head = f"{'phase':<24} {'model':<28} {'wall s':>9} {'CPU s':>9} {'share':>6} {'tokens':>10} {'floor s':>9} {'ratio':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["seconds"] < min_seconds:
            continue
        cpu = f"{r['cpu_seconds']:.1f}" if r["cpu_seconds"] is not None else "-"
        floor = f"{r['floor_seconds']:.1f}" if r["floor_seconds"] is not None else "-"
        ratio = f"{r['ratio_to_floor']:.2f}x" if r["ratio_to_floor"] is not None else "-"
        tokens = f"{r['tokens']:,}" if r["tokens"] else "-"
        lines.append(f"{r['phase'][:24]:<24} {(r['model'] or '(none)')[:28]:<28} {r['seconds']:>9.1f} {cpu:>9} "
                     f"{100 * r['share']:>5.1f}% {tokens:>10} {floor:>9} {ratio:>7}")
    return "\n".join(lines)
