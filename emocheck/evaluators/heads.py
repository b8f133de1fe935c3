"""Light linear heads on frozen MiniLM embeddings, stored as safetensors (no pickle).

A head is W (k x 384), b (k) and a kind: "softmax" (mutually exclusive labels: sentiment,
politeness) or "sigmoid" (one-vs-rest, multi-label: the 28 GoEmotions labels). Heads are fitted by
`emocheck.evaluators.train` on data/evaluators/train_*.csv (sentences written for this purpose;
never on data/emotion_prompts.csv or data/generation_prompts.csv) and saved to
data/evaluators/heads/<name>.safetensors with the labels and training details in the metadata.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelUnavailableError
from ..storage import atomic_write_bytes, sha256_bytes


def _safetensors_metadata(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__") or {}


@dataclass
class LinearHead:
    name: str
    labels: tuple[str, ...]
    kind: str  # "softmax" | "sigmoid"
    W: np.ndarray  # (k, d)
    b: np.ndarray  # (k,)
    meta: dict = field(default_factory=dict)
    sha256: str = ""

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64) @ self.W.T.astype(np.float64) + self.b.astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        if self.kind == "softmax":
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
        raise ValueError(f"unknown head kind {self.kind!r}")

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save

        meta = {
            "name": self.name,
            "labels": json.dumps(list(self.labels)),
            "kind": self.kind,
            "meta": json.dumps(self.meta, sort_keys=True),
        }
        data = save({"W": np.ascontiguousarray(self.W, dtype=np.float32),
                     "b": np.ascontiguousarray(self.b, dtype=np.float32)}, metadata=meta)
        atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path) -> "LinearHead":
        from safetensors.numpy import load

        from ..shipped import verify_shipped

        path = Path(path)
        data = verify_shipped(path)    # a shipped head: checked against the repository's digest
        if data is None:
            if not path.exists():
                raise ModelUnavailableError(
                    f"evaluator head {path} is missing; rebuild it with `python -m emocheck.evaluators.train`"
                )
            data = path.read_bytes()
        try:
            md = _safetensors_metadata(data)
            tensors = load(data)
            return cls(
                name=md.get("name", path.stem),
                labels=tuple(json.loads(md["labels"])),
                kind=md["kind"],
                W=tensors["W"],
                b=tensors["b"],
                meta=json.loads(md.get("meta", "{}")),
                sha256=sha256_bytes(data),
            )
        except Exception as exc:   # not a head file (truncated, another format): one clear message
            raise ModelUnavailableError(
                f"evaluator head {path} is not a readable head file ({type(exc).__name__}: {exc}); restore it "
                "(`git checkout -- PATH` for a shipped head) or rebuild it with `python -m emocheck.evaluators.train`"
            ) from None


def fit_linear_head(
    X: np.ndarray,
    Y: np.ndarray,
    kind: str,
    l2: float = 1e-3,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 500,
    seed: int = 0,
    balanced: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit W, b by full-batch L-BFGS on (weighted) cross-entropy + l2 * ||W||^2.

    softmax: Y is (n,) int class ids; sigmoid: Y is (n, k) {0,1}. For sigmoid heads each label's
    positives and negatives are re-weighted to equal total weight (balanced one-vs-rest), so every
    label's 0.5 point means the same thing (balanced=False: plain, unweighted fit, e.g. for Platt scaling).
    """
    import torch

    torch.manual_seed(seed)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    n, d = Xt.shape
    sw = torch.ones(n, dtype=torch.float64) if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, dtype=np.float64))
    if kind == "softmax":
        y = torch.as_tensor(np.asarray(Y, dtype=np.int64))
        k = int(y.max().item()) + 1
    else:
        Yt = torch.as_tensor(np.asarray(Y, dtype=np.float64))
        k = Yt.shape[1]
        pos = (Yt * sw[:, None]).sum(0).clamp(min=1e-9)
        neg = ((1 - Yt) * sw[:, None]).sum(0).clamp(min=1e-9)
        tot = sw.sum()
        if balanced:
            wmat = sw[:, None] * torch.where(Yt > 0.5, 0.5 * tot / pos, 0.5 * tot / neg)
        else:
            wmat = sw[:, None].expand_as(Yt).clone()
    W = torch.zeros(k, d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = Xt @ W.T + b
        if kind == "softmax":
            loss = (torch.nn.functional.cross_entropy(z, y, reduction="none") * sw).sum() / sw.sum()
        else:
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, Yt, reduction="none") * wmat).sum() / (wmat.sum() / k) / k
        loss = loss + l2 * (W * W).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return W.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)
