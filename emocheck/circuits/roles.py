"""A role per circuit head, from two measurements at the last prompt token (training emotion prompts):

    trigger_ratio  QK side: the head's attention from the last token to the trigger tokens (the
                   dataset's `trigger` span), divided by the share the span would get under uniform
                   attention over the prompt's tokens (1 = no preference for the trigger)
    direct_share   OV/output side: the drop of the head's DIRECT write on the emotion direction when
                   it is mean-ablated ((write - neutral mean write) . u, Gemma's attention norm scale
                   included), divided by its total exact ablation effect on the final-layer projection
                   (1 = its whole effect is its own write; near 0 = it acts through later components)

    role = "picks up at the trigger"        if trigger_ratio >= TRIGGER_RATIO
           "writes to the output"           elif direct_share >= DIRECT_SHARE
           "relays (acts through later components)"   otherwise

Thresholds are fixed here, not tuned. `with_token_evidence` adds the token-level OV / QK measurements
of emocheck.circuits.ov_qk beside each role (they do not change the rule, which was fixed before
they existed): the trigger tokens' OV projection on the emotion direction against the other tokens'
(does what the head reads AT the trigger write the emotion?), the share of its actual emotion write
that comes from the trigger span, attention to the trigger from the positions after it, the tokens
with the largest OV projection, and an `evidence` sentence per head.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emocheck.heads.access import read_heads

TRIGGER_RATIO = 2.0
DIRECT_SHARE = 0.5


def role(trigger_ratio: float, direct_share: float) -> str:
    if trigger_ratio >= TRIGGER_RATIO:
        return "picks up at the trigger"
    if direct_share >= DIRECT_SHARE:
        return "writes to the output"
    return "relays (acts through later components)"


def _right_padded(loaded, texts):
    enc = loaded.tokenizer(list(texts), return_tensors="pt", padding=True, padding_side="right")
    return enc["input_ids"], enc["attention_mask"], enc["attention_mask"].sum(1) - 1


def head_roles(loaded, texts, triggers, neutral_texts, heads, direction, total_effect: dict) -> pd.DataFrame:
    """heads: Components (kind 'head'); total_effect: label -> mean exact ablation effect on `texts`
    (metric change, patched - clean). One row per head with the measurements and the role."""
    from emocheck.heads.screening import tokenize_with_spans

    u = direction.float() / direction.float().norm()
    layers = sorted({c.layer for c in heads})
    ids, mask, last, span = tokenize_with_spans(loaded, list(texts), list(triggers))
    emo = read_heads(loaded, ids, mask, last, layers=layers, pattern=True)
    n_ids, n_mask, n_last = _right_padded(loaded, neutral_texts)
    neu = read_heads(loaded, n_ids, n_mask, n_last, layers=layers)
    real = mask.float()
    uniform = span.float().sum(1) / real.sum(1)                                   # [B]
    rows = []
    for c in heads:
        attn = emo.pattern[c.layer][:, c.head]                                     # [B, T]
        ratio = float(((attn * span.float()).sum(1) / uniform).mean())
        write = emo.write[c.layer][:, c.head] @ u                                  # [B]
        mean_neutral = float((neu.write[c.layer][:, c.head] @ u).mean())
        direct_drop = float((write - mean_neutral).mean())                         # what ablation removes directly
        total_drop = -float(total_effect[c.label])
        share = direct_drop / total_drop if abs(total_drop) > 1e-12 else float("nan")
        rows.append({"component": c.label, "layer": c.layer, "head": c.head, "trigger_ratio": ratio,
                     "direct_drop": direct_drop, "total_drop": total_drop, "direct_share": share,
                     "role": role(ratio, share if np.isfinite(share) else 0.0)})
    return pd.DataFrame(rows)


def with_token_evidence(roles: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    """roles (head_roles) joined with the ov_qk.head_token_table columns and an evidence sentence."""
    df = roles.merge(tokens.drop(columns=["layer", "head"]), on="component", how="left")

    def sentence(r) -> str:
        qk = (f"attends to the trigger {r.trigger_ratio:.1f}x uniform from the last token, "
              f"{r.trigger_ratio_after:.1f}x from the positions after it")
        ov = (f"OV on the emotion direction {r.trigger_ov:+.2f} at trigger tokens vs {r.other_ov:+.2f} elsewhere, "
              f"{100 * r.trigger_write_share:.0f}% of its emotion write from the trigger")
        out = f"{100 * r.direct_share:.0f}% of its ablation effect is its own write" if np.isfinite(r.direct_share) else ""
        return "; ".join(x for x in (qk, ov, out) if x)

    df["trigger_ov_exceeds_other"] = df.trigger_ov > df.other_ov
    df["evidence"] = [sentence(r) for r in df.itertuples()]
    return df
