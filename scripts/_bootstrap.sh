# Shared by scripts/serve and scripts/test: a project virtualenv with Folyam installed.
# Sourced, not run. Re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Folyam needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
  exit 1
fi

bootstrap() {  # $1: the extras to install, e.g. "" or "[test]"
  local extras=$1 stamp=.venv/.installed
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing Folyam$extras into .venv …" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
    echo "$want" > "$stamp"
  fi
}
