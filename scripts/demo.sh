#!/usr/bin/env bash
# Install, ingest a manual into an embedded store (offline profile) and ask it questions.
# Usage: bash scripts/demo.sh [MANUAL.pdf] [QUESTION...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh offline
. .venv/bin/activate

manual="${1:-../shared/corpora/gpredict-user-manual.pdf}"
shift || true
store="${MMRAG_STORE:-mmrag-store}"
if [ "$#" -eq 0 ]; then
  set -- "How do I add a new ground station?" \
         "Which window shows the satellites on a map?" \
         "How do I update the Keplerian elements from the network?"
fi

mmrag ingest "$manual" --store "$store" --profile offline
for question in "$@"; do
  echo
  echo "=== $question"
  mmrag ask "$question" --store "$store"
done
