"""The LM head's vocabulary blocks and greedy bfloat16 screen (emocheck.patching.lm_head) on one
embedded model's real final hidden states, in one process: float32 GFLOP/s per vocabulary block size,
then the screened greedy against the float32 blocks (seconds, ratio, identical tokens, candidates
per row).

    python benchmarks/bench_lm_head.py gemma3-270m --rows 192
    python benchmarks/bench_lm_head.py smollm2-135m --blocks 1024 2048 8192

The hidden states are the model's own final states (after the last norm) over phase 5's ci judged
prompts and 30 greedy tokens each, the distribution the decode loop's head sees.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def decode_states(loaded, n_rows: int) -> torch.Tensor:
    """[n_rows, d] final hidden states of greedy continuations of the ci judged prompts."""
    from emocheck.patching import experiment as ex
    from emocheck.profiles import get_profile

    judged, _ = ex.split_generation_prompts(get_profile("ci"))
    states = []
    with torch.no_grad():
        for text in judged["text"]:
            ids = loaded.tokenizer(text, return_tensors="pt").input_ids.to(loaded.device)
            out = loaded.model.generate(ids, max_new_tokens=30, do_sample=False, min_new_tokens=30)
            states.append(loaded.model.base_model(input_ids=out).last_hidden_state[0, ids.shape[1] - 1:])
            if sum(len(s) for s in states) >= n_rows:
                break
    return torch.cat(states)[:n_rows].float()


def best_of(fn, rounds: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None) -> int:
    from emocheck.models.registry import load_model
    from emocheck.patching.lm_head import VocabHead

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, default=192)
    ap.add_argument("--blocks", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    loaded = load_model(args.model)
    head = VocabHead.of(loaded.model, loaded.config)
    hidden = decode_states(loaded, args.rows)
    flops = 2.0 * hidden.shape[0] * hidden.shape[1] * head.vocab
    print(f"{args.model}: {hidden.shape[0]} decode states, head {head.vocab} x {hidden.shape[1]}, "
          f"{torch.get_num_threads()} threads")
    with torch.no_grad():
        for block in args.blocks:
            def logits_in_blocks(b=block):
                for s in range(0, head.vocab, b):
                    torch.nn.functional.linear(hidden, head.weight[s:s + b])
            secs, _ = best_of(logits_in_blocks, args.rounds)
            print(f"  float32 logits, blocks of {block:>5}: {flops / secs / 1e9:6.1f} GFLOP/s")
        head.screen = False
        t32, want = best_of(lambda: head.greedy(hidden), args.rounds)
        head.screen = True
        screened = head._screens(hidden)
        t16, got = best_of(lambda: head.greedy(hidden), args.rounds)
    cands = head.last_candidates if screened else None
    print(f"  greedy, float32 blocks of {head.vocab_block}: {t32:.3f} s; bfloat16 screen "
          f"({'on' if screened else 'off: below SCREEN_MIN_VOCAB or not exact here'}): {t16:.3f} s, "
          f"{t32 / t16:.2f}x; identical tokens {int((want == got).sum())}/{len(want)}"
          + (f"; {cands / len(want):.1f} float32 candidates per row" if cands is not None else ""))
    return 0 if torch.equal(want, got) else 1


if __name__ == "__main__":
    raise SystemExit(main())
