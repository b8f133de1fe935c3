"""Token-level OV / QK of heads: the value vectors read out of every family are right (attention-weighted
values rebuild the head's z exactly), the per-token contributions sum to the head's direct emotion write,
and the per-head table reports trigger attention and OV for every head."""
from __future__ import annotations

import pytest
import torch

from emocheck.circuits.components import Component
from emocheck.circuits.ov_qk import head_token_table, token_level
from emocheck.heads.access import head_geometry, read_heads
from emocheck.testing import TINY_FAMILIES, tiny_model


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_values_rebuild_z_and_contributions_sum_to_the_write(family):
    m = tiny_model(family, n_layers=2, seed=3)
    g = head_geometry(m)
    enc = m.tokenizer(["hello there my friend", "a b"], return_tensors="pt", padding=True, padding_side="right")
    last = enc["attention_mask"].sum(1) - 1
    u = torch.randn(g.d_model, generator=torch.Generator().manual_seed(0))
    tl = token_level(m, enc["input_ids"], enc["attention_mask"], last, [0, 1], u)
    ref = read_heads(m, enc["input_ids"], enc["attention_mask"], last, layers=[0, 1])
    for layer in (0, 1):
        r = tl[layer]
        for b in range(2):
            q = int(last[b])
            z = torch.einsum("ht,thk->hk", r["pattern"][b, :, q, :q + 1], r["v"][b, :q + 1])
            torch.testing.assert_close(z, r["z"][b], rtol=1e-4, atol=1e-5)
            contrib = (r["pattern"][b, :, q, :q + 1] * r["ov"][b, :, :q + 1]).sum(-1)
            torch.testing.assert_close(contrib, r["write_u"][b], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(r["write_u"], ref.write[layer] @ (u / u.norm()), rtol=1e-4, atol=1e-4)


def test_head_table_reports_trigger_attention_and_ov():
    m = tiny_model("llama", n_layers=2, seed=4)
    texts = ["the cat sat on the mat today", "my dog ran to the park now"]
    triggers = ["cat", "dog"]
    u = torch.randn(head_geometry(m).d_model, generator=torch.Generator().manual_seed(1))
    heads = [Component("head", 1, h) for h in range(m.n_heads)]
    df = head_token_table(m, texts, triggers, heads, u)
    assert list(df.component) == [f"L1H{h}" for h in range(m.n_heads)]
    assert df[["trigger_ov", "trigger_ratio_last", "trigger_ratio_after"]].notna().all().all()
    assert (df.trigger_ratio_last > 0).all() and df.top_ov_tokens.str.len().gt(0).all()
