#!/usr/bin/env bash
# Fail loudly when no GPU is visible: a GPU job must not go green with every test skipped.
set -euo pipefail
python=${1:-python3}
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "require_gpu: torch.cuda.is_available() is False on this runner ($(hostname)); is it a GPU runner?" >&2
  exit 1
fi
"$python" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
