#!/usr/bin/env bash
# PostgreSQL for `remi stack` and its test (Debian package `postgresql`; its tools live in
# /usr/lib/postgresql/<version>/bin, which remi finds without PATH).
set -euo pipefail
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && exit 0
command -v pg_ctl >/dev/null && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql >/dev/null 2>&1; }
fi
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null \
  || { echo "Install PostgreSQL (Debian: apt-get install postgresql) for the team-stack test." >&2; exit 1; }
