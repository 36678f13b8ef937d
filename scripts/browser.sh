#!/usr/bin/env bash
# Makes the browser tests runnable and prints the Chromium to drive: Debian's
# chromium (installed when missing; no browser is ever downloaded) and
# playwright-core from npm (browser-tests/, pinned by its package-lock.json).
# Run by scripts/test; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "browser.sh: installing chromium from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
if [ ! -f browser-tests/node_modules/playwright-core/package.json ]; then
  (cd browser-tests && npm ci --no-audit --no-fund >&2)
fi
echo "$chromium"
