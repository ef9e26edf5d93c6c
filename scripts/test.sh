#!/usr/bin/env bash
# Install with the development extras and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
. .venv/bin/activate
python -m pytest "$@"
