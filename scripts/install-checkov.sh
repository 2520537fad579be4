#!/usr/bin/env bash
# Installs checkov into its own virtual environment, .venv-checkov, next to the project's .venv.
#
# Why a separate environment: checkov 3.3 pins packaging<24 while pulumi needs packaging>=26. In one
# environment pip quietly falls back to checkov 3.1, which pins openai<1 and downgrades the runtime's
# openai to 0.28. agentstage runs checkov as a subprocess (policies/checkov), so it never imports it.
#
# Idempotent: does nothing when the pinned version is already installed.
# Usage: scripts/install-checkov.sh [VENV_DIR]   (default: .venv-checkov in the project root)
set -euo pipefail

CHECKOV_VERSION="3.3.30"
PYTHON="${PYTHON:-python3}"
cd "$(dirname "$0")/.."
VENV="${1:-.venv-checkov}"
STAMP="$VENV/.checkov-$CHECKOV_VERSION"

if [ -f "$STAMP" ] && [ -x "$VENV/bin/checkov" ]; then
  exit 0
fi
echo "installing checkov $CHECKOV_VERSION into $VENV ..."
"$PYTHON" -m venv "$VENV"
# Byte-compile on install: the environment sets PYTHONDONTWRITEBYTECODE=1, and checkov imports a lot.
PYTHONDONTWRITEBYTECODE= "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "checkov==$CHECKOV_VERSION"
# Fail here, not in the first scan, if the install cannot even start offline.
CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" --version >/dev/null
touch "$STAMP"
