#!/usr/bin/env bash
# Install multimodal_rag into ./.venv on a fresh machine (Python >= 3.10, no GPU needed).
# Usage: bash scripts/install.sh [EXTRAS]   (EXTRAS defaults to "offline")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-offline}"

# Tesseract reads pixel-only labels inside figures; optional, so only where we may install it.
if ! command -v tesseract >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing tesseract-ocr (figure label OCR)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr) >&2 \
      || echo "tesseract-ocr not installed; OCR of figure labels stays off" >&2
  else
    echo "tesseract not found; OCR of figure labels stays off (apt-get install tesseract-ocr)" >&2
  fi
fi

# The development extras test the chatbot page in a real headless browser.
if [[ ",${extras}," == *",dev,"* ]] && ! command -v chromium >/dev/null 2>&1 \
    && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (browser test of the chatbot example)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 \
    || echo "chromium not installed; the browser test will fail" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >&2
# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0" >&2
python -m pip install -q -e ".[${extras}]" >&2
