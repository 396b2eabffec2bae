#!/usr/bin/env bash
# Headless Chromium renders the HTML audit report in the tests (Debian package `chromium`).
set -euo pipefail
command -v chromium >/dev/null && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }
fi
command -v chromium >/dev/null || { echo "Install Chromium (Debian: apt-get install chromium) to run the report test." >&2; exit 1; }
