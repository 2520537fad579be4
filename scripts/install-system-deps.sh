#!/usr/bin/env bash
# Installs Debian packages agentstage needs, only if they are missing.
#
#   scripts/install-system-deps.sh          what the test suite needs (make test): its real servers (Redis),
#                                           Graphviz (agentstage report draws the architecture with dot) and
#                                           headless Chromium with a font (the report is tested in a real
#                                           browser). PostgreSQL + pgvector come from the pgserver Python
#                                           package (installed into .venv), not from here.
#   scripts/install-system-deps.sh bench    what the runtime benchmarks need (make bench-runtime,
#                                           make bench-ledger): wrk, the HTTP load generator.
set -euo pipefail

purpose="${1:-tests}"
missing=()
case "$purpose" in
  tests)
    needed_by="the tests"
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v dot >/dev/null 2>&1 || missing+=(graphviz)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    ;;
  bench)
    needed_by="the runtime benchmarks"
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    ;;
  *)
    echo "usage: $0 [tests|bench]" >&2
    exit 2
    ;;
esac

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  # CI runners (GitHub's included) give passwordless sudo; a workstation is asked to do it by hand.
  if sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "error: $needed_by need these Debian packages: ${missing[*]}; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing ${missing[*]} ..."
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
