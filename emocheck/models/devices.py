"""Devices for one process, one worker and one node: a GPU per xdist worker, `device_map="auto"`
placement across a node's GPUs (accelerate), and where a device-mapped model takes its inputs.

Used by `emocheck.models.registry.select_device` / `load_model`; everything here can be checked
without a GPU (tests/test_devices.py).
"""
from __future__ import annotations

import contextlib
import logging
import os

import torch


def xdist_worker_index(worker_id: str | None = None) -> int | None:
    """'gw3' -> 3 ($PYTEST_XDIST_WORKER when not given); None outside an xdist worker."""
    worker_id = worker_id if worker_id is not None else os.environ.get("PYTEST_XDIST_WORKER")
    if not worker_id or not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        return None
    return int(worker_id[2:])


def device_for_worker(worker_id: str | None, n_gpus: int) -> str:
    """One GPU per xdist worker: worker gw<i> gets cuda:<i mod n_gpus> (`pytest -n <gpus>`); the
    controller / a plain session gets cuda:0; no GPU: cpu."""
    if n_gpus <= 0:
        return "cpu"
    index = xdist_worker_index(worker_id)
    return f"cuda:{(index or 0) % n_gpus}"


def input_device(model: torch.nn.Module) -> torch.device:
    """Where a (possibly device-mapped) model takes its inputs: the device of its input embeddings."""
    emb = model.get_input_embeddings()
    return next(emb.parameters()).device


def plan_device_map(config, max_memory: dict, dtype: torch.dtype = torch.bfloat16) -> dict:
    """accelerate's `device_map="auto"` placement of a model built from `config`, without weights
    (init_empty_weights): decoder blocks are never split across devices. For planning and tests."""
    from accelerate import infer_auto_device_map, init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights(), warnings_suppressed():
        model = AutoModelForCausalLM.from_config(config)
    with warnings_suppressed():
        return dict(infer_auto_device_map(model, max_memory=max_memory, dtype=dtype,
                                          no_split_module_classes=list(model._no_split_modules or [])))


@contextlib.contextmanager
def warnings_suppressed():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
