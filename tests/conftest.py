"""Shared fixtures for the library's own tests: tiny random models (no download) and temp results."""
import pytest

from emocheck.testing import TINY_FAMILIES, tiny_model


@pytest.fixture(scope="session", params=TINY_FAMILIES)
def tiny_any(request):
    """One tiny model per mapped architecture family."""
    return tiny_model(request.param, n_layers=3)


@pytest.fixture(scope="session")
def tiny_llama():
    return tiny_model("llama", n_layers=3)


@pytest.fixture(scope="session", autouse=True)
def _timing_to_tmp(tmp_path_factory):
    """The library's phase timers must not write into the repository's results/ during unit tests."""
    from emocheck import timing

    timing.configure(tmp_path_factory.mktemp("timing"), "tests")
    yield
    timing.configure(None, None)


@pytest.fixture
def results_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCHECK_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def pytest_configure(config):
    # Tiny models run fastest on one thread, and on a busy 2-core machine two torch threads per
    # process spin against other processes and slow runs down several times.
    import torch

    torch.set_num_threads(1)
