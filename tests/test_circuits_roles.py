"""Head roles: the rule, and the measurements against a hand computation on a tiny model."""
import torch

from emocheck.circuits.components import Component
from emocheck.circuits.roles import head_roles, role
from emocheck.heads.access import read_heads
from emocheck.heads.screening import tokenize_with_spans
from emocheck.testing import tiny_model

TEXTS = ["thank you so much, friend", "oh many thanks for it"]
TRIGGERS = ["thank you", "many thanks"]


def test_role_rule():
    assert role(3.0, 0.9) == "picks up at the trigger"
    assert role(1.0, 0.9) == "writes to the output"
    assert role(1.0, 0.1).startswith("relays")


def test_measurements_match_hand_computation():
    m = tiny_model("llama", n_layers=2, seed=3)
    u = torch.randn(m.d_model, generator=torch.Generator().manual_seed(0))
    heads = [Component("head", 1, 0), Component("head", 0, 2)]
    df = head_roles(m, TEXTS, TRIGGERS, ["a plain line", "the bus at six"], heads, u, {"L1H0": -0.5, "L0H2": 0.25})
    ids, mask, last, span = tokenize_with_spans(m, TEXTS, TRIGGERS)
    ro = read_heads(m, ids, mask, last, pattern=True)
    attn = ro.pattern[1][:, 0]
    want = ((attn * span).sum(1) / (span.sum(1) / mask.sum(1))).mean()
    row = df.set_index("component").loc["L1H0"]
    assert abs(row.trigger_ratio - float(want)) < 1e-5
    assert row.total_drop == 0.5
    assert abs(row.direct_share - row.direct_drop / 0.5) < 1e-9
    assert set(df.role) <= {"picks up at the trigger", "writes to the output", "relays (acts through later components)"}


def test_token_evidence_joins_and_explains_each_head(tmp_path):
    from emocheck.circuits.figures import plot_head_tokens
    from emocheck.circuits.ov_qk import head_token_table
    from emocheck.circuits.roles import with_token_evidence

    m = tiny_model("llama", n_layers=2, seed=3)
    u = torch.randn(m.d_model, generator=torch.Generator().manual_seed(0))
    heads = [Component("head", 1, 0), Component("head", 0, 2)]
    roles = head_roles(m, TEXTS, TRIGGERS, ["a plain line", "the bus at six"], heads, u, {"L1H0": -0.5, "L0H2": 0.25})
    df = with_token_evidence(roles, head_token_table(m, TEXTS, TRIGGERS, heads, u))
    assert list(df.component) == ["L1H0", "L0H2"] and list(df.role) == list(roles.role)   # the rule is unchanged
    # the token table's last-token trigger ratio is the roles' own measurement, computed independently
    assert (df.trigger_ratio - df.trigger_ratio_last).abs().max() < 1e-5
    assert df.evidence.str.contains("OV on the emotion direction").all()
    plot_head_tokens(df, tmp_path / "roles.png", "tiny")
    assert (tmp_path / "roles.png").stat().st_size > 0
