#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run the whole suite.
#   - Debian's chromium (browser tests drive it through Playwright's executable_path)
#   - a virtualenv in .venv with flowrun and its test extras
# Extra arguments go to pytest, e.g. scripts/test.sh -k emulator (then no benchmarks run)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing Debian's chromium (for the computer-use browser tests)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
echo "==> installing flowrun[test]"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' > .venv/pip.log 2>&1; then
  cat .venv/pip.log
  echo "pip install failed" >&2
  exit 1
fi

echo "==> running the tests"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

# The benchmarks are part of the product: on a full run (no pytest arguments), each runs
# once in its quick mode; a crashing benchmark fails the script. SKIP_BENCHMARKS=1 skips.
if [ "$#" -eq 0 ] && [ "${SKIP_BENCHMARKS:-0}" != 1 ]; then
  for bench in benchmarks/bench_*.py; do
    echo "==> $bench --quick"
    .venv/bin/python "$bench" --quick
  done
fi
