#!/usr/bin/env bash
# voxmagic's two set-up commands on a fresh machine:
#   ./run.sh demo    create .venv, install voxmagic, execute notebooks/quickstart.ipynb and print it
#   ./run.sh test    the same, plus test dependencies and Debian packages (chromium, espeak-ng), then ruff and mypy on
#                    voxmagic/, then the test suite
# Extra arguments after "test" go to pytest. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

apt_install() {  # Debian packages, only those missing, only where apt-get can run
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "warning: cannot install ${missing[*]} (no apt-get); some tests may fail" >&2; return 0
  fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

venv() {  # $1 = the extra to install; skipped when already done for this pyproject.toml
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$PYTHON" -m venv .venv; }
  fi
  local stamp=".venv/.installed-$1"
  [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && return 0
  echo "installing voxmagic[$1] into .venv (log: .venv/pip.log) ..." >&2
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --disable-pip-version-check -e ".[$1]"; } >.venv/pip.log 2>&1; then
    tail -30 .venv/pip.log >&2; echo "pip install failed; full log in .venv/pip.log" >&2; exit 1
  fi
  touch "$stamp"
}

case "${1:-}" in
  demo)
    venv notebooks
    exec .venv/bin/python -m voxmagic demo notebooks/quickstart.ipynb ;;
  test)
    shift
    venv test
    apt_install chromium espeak-ng  # a real browser; speech for the microphone test
    echo "ruff (lint, format) and mypy on voxmagic/ ..." >&2
    .venv/bin/python -m ruff check --quiet voxmagic
    .venv/bin/python -m ruff format --check --quiet voxmagic
    .venv/bin/python -m mypy --no-error-summary
    exec .venv/bin/python -m pytest "$@" ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test [pytest args]" >&2; exit 2 ;;
esac
