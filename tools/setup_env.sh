#!/usr/bin/env bash
# Set up (or verify) a Python environment for mmseg-sbce. Idempotent: a second run on a ready
# environment only checks a stamp and a few imports (seconds).
#
# Which environment:
#   * an active virtualenv / conda env (VIRTUAL_ENV or CONDA_PREFIX set) is used as it is;
#   * otherwise ./.venv is created next to this repository.
# torch: a torch already importable in that environment is kept (GPU users keep their CUDA
#   build); otherwise torch==${SBCE_TORCH_VERSION:-2.13.0} is installed.
# mmcv: a full mmcv (with compiled ops) in mmseg's range is kept; otherwise the pure-Python
#   mmcv-lite from the lock file is installed (see mmseg_sbce/utils/compat.py).
# Everything else comes from requirements/lock-cpu.txt, installed with --no-deps so pip never
#   pulls a second (GUI) OpenCV or another torch. Prints the interpreter path as its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/requirements/lock-cpu.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
  PY="$CONDA_PREFIX/bin/python"
else
  if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    echo "[setup_env] creating $ROOT/.venv" >&2
    "${PYTHON:-python3}" -m venv "$ROOT/.venv"
  fi
  PY="$ROOT/.venv/bin/python"
fi
ENV_PREFIX="$("$PY" -c 'import sys; print(sys.prefix)')"
STAMP="$ENV_PREFIX/.mmseg-sbce-setup"
WANT="$(cat "$LOCK" "$ROOT/setup.py" "$0" | sha256sum | cut -d' ' -f1)"

check() {
  "$PY" - <<'PYEOF' >/dev/null 2>&1
import mmseg_sbce, mmseg.models, torch, pydensecrf.densecrf, mmpretrain, pytest
PYEOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && check; then
  echo "[setup_env] environment ready ($ENV_PREFIX)" >&2
  echo "$PY"
  exit 0
fi

pip_install() { "$PY" -m pip install -q "$@" 2>&1 | grep -v 'is ignored: it is neither' >&2 || true; }

if "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "[setup_env] keeping torch $("$PY" -c 'import torch; print(torch.__version__)')" >&2
else
  echo "[setup_env] installing torch==${SBCE_TORCH_VERSION:-2.13.0}" >&2
  pip_install "torch==${SBCE_TORCH_VERSION:-2.13.0}"
fi

REQS="$(mktemp)"
trap 'rm -f "$REQS"' EXIT
if "$PY" - <<'PYEOF' >/dev/null 2>&1
import mmcv, mmcv._ext  # a full mmcv build with compiled ops
from packaging.version import parse
assert parse('2.0.0rc4') <= parse(mmcv.__version__) < parse('2.2.0')
PYEOF
then
  echo "[setup_env] keeping full mmcv" >&2
  grep -v -e '^mmcv-lite==' -e '^#' "$LOCK" > "$REQS"
else
  grep -v '^#' "$LOCK" > "$REQS"
fi
echo "[setup_env] installing the pinned stack (requirements/lock-cpu.txt)" >&2
pip_install --no-deps -r "$REQS"
pip_install --no-deps --no-build-isolation -e "$ROOT"
check || { echo "[setup_env] import check failed; run: $PY -c 'import mmseg_sbce'" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup_env] environment ready ($ENV_PREFIX)" >&2
echo "$PY"
