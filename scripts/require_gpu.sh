#!/usr/bin/env bash
# Fail loudly when no GPU is visible: a GPU job must not go green with every test skipped. The check is
# the plugin's own detection (`perfgate gpus`), checked against torch, so the two cannot disagree.
set -euo pipefail
python=${1:-python3}
if ! "$python" -m perfgate gpus --require; then
  echo "require_gpu: no GPU for the gpu cases on this runner ($(hostname)); is it a GPU runner?" >&2
  exit 1
fi
