#!/usr/bin/env bash
# One GPU visit on a lent machine (offline, bare, minutes of device time): the image's own Python, the
# wheels the image lacks carried in .whl/, scripts/gpu_visit.py's selection run twice, at most 8 files
# written under $OUT. Where it runs:
#   scripts/gpu-visit.sh --dry-run        any machine: the selection, the estimate, what travels
#   scripts/gpu-visit.sh --fetch-wheels   here, online: the wheels the image lacks, into .whl/ (ignored)
#   scripts/gpu-visit.sh [--next]         there (device tool: carry .whl): the visit; --next, what the
#                                         first visit leaves out
set -euo pipefail
cd "$(dirname "$0")/.."
image_python=/opt/torch/.venv/bin/python3  # ../shared/FIELD-NOTES.md: the GPU image's interpreter
if [ -n "${PERFGATE_VISIT_PYTHON:-}" ]; then
  python=$PERFGATE_VISIT_PYTHON
elif [ -x "$image_python" ]; then
  python=$image_python
else
  python=python3
fi
if [ "${1:-}" = "--fetch-wheels" ]; then
  # torchao (3.4 MB) is the one package a visit's cases need that the image does not have.
  "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    -d .whl torchao==0.18.0
  exit 0
fi
if [ "${1:-}" != "--dry-run" ] && compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/perfgate-visit-site .whl/*.whl
  export PYTHONPATH=/tmp/perfgate-visit-site${PYTHONPATH:+:$PYTHONPATH}
fi
exec "$python" scripts/gpu_visit.py --python "$python" "$@"
