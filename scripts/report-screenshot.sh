#!/usr/bin/env bash
# Regenerates docs/report.png, the README's picture of a real report: `agentstage report` on the enterprise
# stage, opened in headless Chromium (Debian's chromium; scripts/install-system-deps.sh installs it).
set -euo pipefail

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/agentstage report --stack enterprise-prod --out "$scratch/report.html" >/dev/null
chromium --headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --hide-scrollbars --window-size=1400,1500 --screenshot="$PWD/docs/report.png" "file://$scratch/report.html" \
  2>/dev/null
echo "docs/report.png"
