"""Fake emotion vectors / subspaces / activations for the phase-5 unit tests (no model needed)."""
import torch

from emocheck.patching.conditions import EMOTIONS


class FakeVectors:
    def __init__(self, d=64, layers=(0, 1, 2), seed=0):
        g = torch.Generator().manual_seed(seed)
        self.layers, self.emotions = list(layers), list(EMOTIONS)
        shared = torch.randn(d, generator=g, dtype=torch.float64)
        self.v = {(e, l): shared + 0.5 * torch.randn(d, generator=g, dtype=torch.float64) for e in EMOTIONS for l in layers}
        self.d = d

    def vector(self, emotion, layer, kind="vs_neutral", site="hook_resid_post", position="last"):
        v = self.v[(emotion, layer)]
        if kind == "specific":
            u = sum(self.v[(e, layer)] for e in EMOTIONS)
            u = u / u.norm()
            return v - (v @ u) * u
        return v.clone()


class FakeSubspaces:
    def __init__(self, vecs: FakeVectors, k=3):
        self.vecs, self.k = vecs, k

    def components(self, emotion, layer, k=None, site="hook_resid_post", position="last"):
        v = self.vecs.vector(emotion, layer)
        g = torch.Generator().manual_seed(7)
        m = torch.cat([v[:, None], torch.randn(v.shape[0], (k or self.k) - 1, generator=g, dtype=torch.float64)], 1)
        return torch.linalg.qr(m)[0].T


def fake_null_source(d=64, n=12):
    def source(emotion, layer, site):
        g = torch.Generator().manual_seed(layer * 10 + EMOTIONS.index(emotion))
        return torch.randn(n, d, generator=g) + 1.0, torch.randn(n, d, generator=g)
    return source
