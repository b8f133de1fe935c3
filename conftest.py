"""Root conftest: the lazy fixtures in fixtures/ (the emocheck plugin itself is registered through
the pytest11 entry point in pyproject.toml, so it also works outside this repository)."""
pytest_plugins = [
    "fixtures.models",
    "fixtures.data",
    "fixtures.representations",
    "fixtures.patching",
]
