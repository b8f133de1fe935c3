"""Paired activations: the same prompts through two models, at corresponding positions, from the cache.

Positions correspond across tokenizers by rule, not by token index (`last` prompt token, `mean` over
the prompt without its first token, `trigger_last` = the trigger span's last token; see
emocheck.representations.extraction). Both models see the profile's one prompt table, so row i is the
same prompt in both; that is checked, not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emocheck.errors import ConfigError
from emocheck.profiles import Profile
from emocheck.representations.build import Representations, build_representations


@dataclass
class PairedActivations:
    source: Representations
    target: Representations
    position: str = "last"
    site: str = "hook_resid_post"

    def __post_init__(self):
        if self.source.activations.ids != self.target.activations.ids:
            raise ConfigError(f"{self.source.model} and {self.target.model} were extracted on different prompts; "
                              "rebuild both representations under one profile")
        positions = self.source.activations.meta.get("positions", [])
        if self.position not in positions:
            raise ConfigError(f"position {self.position!r} was not extracted; available: {', '.join(positions)}")

    @property
    def prompts(self) -> pd.DataFrame:
        return self.source.prompts

    @property
    def labels(self) -> np.ndarray:
        return self.prompts["emotion"].to_numpy()

    @property
    def train(self) -> np.ndarray:
        return (self.prompts["split"] == "train").to_numpy()

    @property
    def emotions(self) -> list[str]:
        return list(self.source.emotions)

    def x(self, side: str, layer: int) -> np.ndarray:
        reps = self.source if side == "source" else self.target
        return reps.activations.get(layer, self.site, self.position).double().numpy()


def relative_depth(layer: int, n_layers: int) -> float:
    """(layer + 1) / n_layers: resid_post of the last block is 1.0 in every model."""
    return (layer + 1) / n_layers


def depth_matched(layer: int, n_from: int, n_to: int) -> int:
    """The layer of an n_to-layer model at the relative depth closest to `layer` of an n_from-layer one."""
    target = relative_depth(layer, n_from)
    return int(np.argmin([abs(relative_depth(l, n_to) - target) for l in range(n_to)]))


def paired_activations(source: str, target: str, profile: Profile, *, position: str = "last",
                       site: str = "hook_resid_post", progress: bool = True) -> PairedActivations:
    return PairedActivations(build_representations(source, profile, progress=progress),
                             build_representations(target, profile, progress=progress), position, site)
