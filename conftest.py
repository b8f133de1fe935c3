"""Root conftest: the lazy fixtures in fixtures/ (the emocheck plugin itself is registered through
the pytest11 entry point in pyproject.toml, so it also works outside this repository)."""
pytest_plugins = [
    "fixtures.models",
    "fixtures.data",
    "fixtures.representations",
    "fixtures.patching",
    "fixtures.heads",
    "fixtures.alignment",
    "fixtures.circuits",
]


def pytest_configure(config):
    # Under `pytest -n N` every worker would start as many torch threads as there are cores; on a
    # small machine the threads then spin against each other and a forward pass gets several times
    # slower. Give each worker its share of the cores.
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        import os

        import torch

        workers = int(workerinput.get("workercount", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
