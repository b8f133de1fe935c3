import numpy as np
import pytest
import torch

from emocheck.representations.cache import ActivationSet
from emocheck.errors import ConfigError
from emocheck.representations.vectors import compute_emotion_subspaces, compute_emotion_vectors, vectors_for_layer

D = 32


def _planted(seed=0, n=200):
    """Neutral ~ N(0, I); each emotion = neutral + shared 'emotional' offset + its own offset (+ a
    second, sample-specific direction for gratitude)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    shared, own = 4 * basis[0], {"gratitude": 3 * basis[1], "anger": 3 * basis[2], "apology": 3 * basis[3]}
    xs, labels = [], []
    for e in ["neutral", "gratitude", "anger", "apology"]:
        x = torch.randn(n, D, generator=g, dtype=torch.float64)
        if e != "neutral":
            x = x + shared + own[e]
        if e == "gratitude":
            x = x + torch.randn(n, 1, generator=g, dtype=torch.float64) * 5 * basis[4]
        xs.append(x)
        labels += [e] * n
    return torch.cat(xs), np.array(labels), basis, shared, own


def test_vectors_recover_planted_directions():
    x, labels, basis, shared, own = _planted()
    v = vectors_for_layer(x, labels, ["gratitude", "anger", "apology"])
    for e in own:
        # seed's definition: mean(emotion) - mean(neutral) = shared + own
        assert torch.allclose(v["vs_neutral"][e], shared + own[e], atol=0.5)
        # vs the other emotions: own - mean(other owns)
        others = torch.stack([own[o] for o in own if o != e]).mean(0)
        assert torch.allclose(v["vs_other"][e], own[e] - others, atol=0.5)
        # specific: the estimated shared component (mean of the vs_neutral vectors) projected out
        estimated_shared = torch.stack(list(v["vs_neutral"].values())).mean(0)
        assert abs(v["specific"][e] @ estimated_shared) < 1e-9
        assert abs(torch.nn.functional.cosine_similarity(v["specific"][e], shared, dim=0)) < 0.1
        assert torch.nn.functional.cosine_similarity(v["specific"][e], own[e], dim=0) > 0.7
    cos = torch.nn.functional.cosine_similarity(v["vs_neutral"]["gratitude"], v["vs_neutral"]["anger"], dim=0)
    assert cos > 0.5   # the shared component makes vs_neutral vectors alike, as on the real models


def test_subspace_recovers_planted_components():
    x, labels, basis, shared, own = _planted()
    acts = ActivationSet("planted", [str(i) for i in range(len(x))], {"last/blocks.0.hook_resid_post": x.float()},
                         {"positions": ["last"], "sites": ["hook_resid_post"], "layers": [0]})
    subs = compute_emotion_subspaces(acts, labels, ["gratitude", "anger", "apology"], k=5)
    comps = subs.components("gratitude", 0, k=2, site="hook_resid_post", position="last").double()
    # the first two components span the mean offset and the planted sample-specific direction
    planted = torch.stack([(shared + own["gratitude"]) / (shared + own["gratitude"]).norm(), basis[4]])
    overlap = (comps @ planted.T).pow(2).sum() / 2   # mean squared cosine between the 2-D subspaces
    assert overlap > 0.95
    ev = subs.explained("gratitude", 0)
    assert torch.all(ev[:-1] >= ev[1:]) and ev.sum() <= 1 + 1e-6
    assert torch.allclose(comps @ comps.T, torch.eye(2, dtype=torch.float64), atol=1e-5)


def test_emotion_vectors_api_errors():
    x, labels, *_ = _planted(n=20)
    acts = ActivationSet("planted", [str(i) for i in range(len(x))], {"last/blocks.0.hook_resid_post": x.float()},
                         {"positions": ["last"], "sites": ["hook_resid_post"], "layers": [0]})
    vecs = compute_emotion_vectors(acts, labels, ["gratitude", "anger", "apology"])
    assert vecs.vector("anger", 0).shape == (D,)
    with pytest.raises(ConfigError, match="unknown emotion 'joy'"):
        vecs.vector("joy", 0)
    with pytest.raises(ConfigError, match="layer 3 is out of range"):
        vecs.vector("anger", 3)
    with pytest.raises(ConfigError, match="unknown vector kind"):
        vecs.vector("anger", 0, kind="pca")
    np.testing.assert_allclose(np.diag(vecs.cosine_matrix(0)), 1.0, atol=1e-6)
    with pytest.raises(ConfigError, match="at least 2"):
        vectors_for_layer(x[:3], labels[:3], ["gratitude"])
