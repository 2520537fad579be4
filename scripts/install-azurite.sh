#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator) into .tools/azurite for the Storage Queue bus tests.
# Idempotent: returns at once when the pinned version is already there.
# Pinned to 3.35.0, the last release that runs on Debian 12's Node.js 18 (3.36 needs Node 21, 3.37 Node 22).
set -euo pipefail

VERSION=3.35.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.tools/azurite"
STAMP="$PREFIX/.installed-$VERSION"

if [ -f "$STAMP" ] && [ -x "$PREFIX/node_modules/.bin/azurite-queue" ]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: Azurite needs Node.js and npm; install them with:" >&2
    echo "  sudo apt-get install -y nodejs npm" >&2
    exit 1
  fi
  echo "installing nodejs npm ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

echo "installing azurite $VERSION into $PREFIX ..."
mkdir -p "$PREFIX"
rm -f "$PREFIX"/.installed-*
npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error "azurite@$VERSION" >/dev/null
touch "$STAMP"
