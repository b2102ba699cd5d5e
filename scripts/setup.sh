#!/usr/bin/env bash
# Everything a fresh Debian machine needs: ImageMagick and Chromium (Debian), a virtual
# environment and the pinned dependencies. Safe to re-run: it skips what is already in place. pip's cache is kept
# (~/.cache/pip), so later runs and CI reinstall without downloading again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ldconfig -p 2>/dev/null | grep -q 'libMagickWand-6.Q16.so'; then
  echo "setup: installing ImageMagick (libmagickwand-6.q16-6) from Debian" >&2
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmagickwand-6.q16-6
fi

# Headless Chromium for the browser tests (Playwright drives Debian's build; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (headless browser for the web tests) from Debian" >&2
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    echo "setup: installing python3-venv from Debian" >&2
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip
    rm -rf .venv
    "$PY" -m venv .venv
  fi
fi

want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
stamp=.venv/.deltav2a-installed
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned dependencies into .venv (first run downloads torch: a few GB)" >&2
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
