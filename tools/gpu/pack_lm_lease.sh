#!/usr/bin/env bash
# Copies what stage lm_lease of device_checks.sh reads into the folder the device call carries, and checks that the
# working tree and that folder together stay under the device tool's 64 MiB:
#   bash tools/gpu/pack_lm_lease.sh [DEST]     (from the repository root; DEST defaults to data/, which is git-ignored)
# Source: $XLSTM_SEQ_DATA, else ../shared/data. LM_LEASE_PART picks the corpus slice (one Wikipedia part, about 22M
# GPT-2 tokens; the lease reads the first 3.3M, twice that with lease.tokens_factor=2). Also writes the commit to
# .revision (REVISION_FILE elsewhere), which device_checks.sh reports.
set -euo pipefail
SRC=${XLSTM_SEQ_DATA:-../shared/data}
DEST=${1:-data}
PART=${LM_LEASE_PART:-enwiki_corpus/enwiki2015_part_AA.txt.xz}
LIMIT=$((64 * 1024 * 1024))
FILES=(
  "$PART"
  gpt2_bpe/encoder.json gpt2_bpe/vocab.bpe
  hellaswag/hellaswag_val_full.txt.xz
  lambada/lambada_test.jsonl
  wikitext-2-raw/wiki.test.raw
  wikitext-103/wiki.test.tokens
  wikitext-2/wiki.test.tokens wikitext-2/wiki.train.tokens.xz
  ptb/ptb.test.txt
)
for f in "${FILES[@]}"; do
  [ -f "$SRC/$f" ] || { echo "missing: $SRC/$f" >&2; exit 1; }
  mkdir -p "$DEST/$(dirname "$f")"
  install -m 644 "$SRC/$f" "$DEST/$f"  # the source files are read-only; a copy that is not stays replaceable
done
REVISION_FILE=${REVISION_FILE:-.revision}
git rev-parse HEAD > "$REVISION_FILE"

# What travels: tracked and untracked-not-ignored files, plus the carried DEST and .revision.
bytes() { du -cb --apparent-size "$@" 2>/dev/null | tail -1 | cut -f1; }
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb --apparent-size 2>/dev/null \
  | awk '$2 == "total" { sum += $1 } END { print sum + 0 }')
packed=$(bytes "${FILES[@]/#/$DEST/}")
carried=$(bytes "$DEST" "$REVISION_FILE")
total=$((tree + carried))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "working tree: $(mib "$tree")"
echo "packed for the lease: $(mib "$packed") (${#FILES[@]} files from $SRC)"
echo "carried ($DEST, everything in it, and $REVISION_FILE): $(mib "$carried")"
echo "total: $(mib "$total") of the $(mib "$LIMIT") a call may carry"
if [ "$total" -ge "$LIMIT" ]; then
  echo "over the limit: empty $DEST of what the lease does not read (du -sh $DEST/*)" >&2
  exit 1
fi
