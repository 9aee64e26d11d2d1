#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install every package of the repo, editable, with pinned
# versions. Re-runs only when a pyproject/constraints file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv
STAMP=$VENV/.installed
inputs=(constraints.txt requirements-dev.txt libs/common/pyproject.toml deploy/local/pyproject.toml services/*/pyproject.toml)

if [[ -f $STAMP ]]; then
  stale=0
  for f in "${inputs[@]}"; do [[ $f -nt $STAMP ]] && stale=1; done
  [[ $stale == 0 ]] && exit 0
fi

PY=${PYTHON:-}
if [[ -z $PY ]]; then
  # 3.11 first: the offline CPU torch wheel the ml service will use is built for it.
  for candidate in python3.11 python3 python3.12 python3.13; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$candidate
      break
    fi
  done
fi
[[ -n $PY ]] || { echo "Python >= 3.11 is required" >&2; exit 1; }

[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
editables=(-e libs/common -e deploy/local)
# ml with its torch extra: what exports the embedding model's ONNX graph and the torch backend the
# tests compare it with (the ml image leaves it out of its runtime stage).
for svc in services/*/; do
  [[ $svc == services/ml/ ]] && svc="services/ml[torch]"
  editables+=(-e "$svc")
done
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
  -r requirements-dev.txt "${editables[@]}"
touch "$STAMP"
