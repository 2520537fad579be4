#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only if they are missing: its real servers (Redis),
# Graphviz (agentstage report draws the architecture with dot) and headless Chromium with a font (the
# report is tested in a real browser). PostgreSQL + pgvector come from the pgserver Python package
# (installed into .venv), not from here.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  # CI runners (GitHub's included) give passwordless sudo; a workstation is asked to do it by hand.
  if sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "error: the tests need these Debian packages: ${missing[*]}; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing ${missing[*]} ..."
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
