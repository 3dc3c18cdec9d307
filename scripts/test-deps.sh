#!/usr/bin/env bash
# Installs the servers Ferry's tests run against, when they are missing:
# PostgreSQL 15 (initdb, postgres, pg_basebackup), redis-server, pgbouncer
# (tests in transaction-pooling mode) and Chromium (the dashboard's browser
# tests drive it headless). Uses
# apt-get (as root, or through sudo). Prints what it did; never fails
# silently: a missing server later fails the tests under CI=true.
set -euo pipefail

need=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql-15)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  need+=(redis-server)
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
  && ! command -v google-chrome >/dev/null 2>&1 && [ -z "${FERRY_CHROMIUM:-}" ]; then
  need+=(chromium)
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  need+=(pgbouncer)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "test-deps: missing ${need[*]} and not root (no sudo): install them, or set FERRY_TEST_DATABASE_URL" >&2
    exit 0
  fi
fi
echo "test-deps: installing ${need[*]}"
# Keep package scripts from starting system-wide daemons: tests start their own.
$sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
$sudo rm -f /usr/sbin/policy-rc.d
echo "test-deps: installed ${need[*]}"
