#!/usr/bin/env bash
# scripts/bench.d/blob/xfer.sh TOOL down|up DATASET: one transfer, the unit that anchors.sh times.
#   down: container DATASET (download Azurite)  -> a fresh, empty $BENCH_WORK/dl/TOOL-DATASET
#   up:   $BENCH_WORK/data/DATASET              -> container uploads on the upload Azurite, under a
#         new prefix each run (so no tool can skip files that are already there)
# The last download is kept so that blob.sh can check its bytes; blob.sh deletes it,
# untimed, before the next run. Run by hand, an earlier download is moved aside (a rename,
# no cost) into $BENCH_WORK/trash.
# Needs the rclone remotes and SAS tokens that export_creds (lib.sh) puts in the environment.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tool=$1 dir=$2 ds=$3

if [ "$dir" = down ]; then
  dest=$BENCH_WORK/dl/$tool-$ds
  if [ -e "$dest" ]; then mkdir -p "$BENCH_WORK/dl/trash"; mv "$dest" "$(mktemp -u -p "$BENCH_WORK/dl/trash")"; fi
  mkdir -p "$dest"
  case $tool in
  rclone) exec rclone copy "az$ds:$ds" "$dest" ;;
  rclone-tuned)
    exec rclone copy "az$ds:$ds" "$dest" --transfers 16 --checkers 16 --fast-list \
      --multi-thread-streams 8 --multi-thread-cutoff 64M ;;
  python) exec "$PY" "$BENCH_HERE/azblob.py" download "$ds" "$dest" ;;
  stagehand) exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" download "$ds" --target-path "$dest" ;;
  stagehand-md5all) # every blob hashed, parallel-range ones included (as AzCopy does)
    STAGEHAND_AZURE_VERIFY_MD5=all exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" download "$ds" --target-path "$dest" ;;
  stagehand-nomd5) # no Content-MD5 check at all
    STAGEHAND_AZURE_VERIFY_MD5=0 exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" download "$ds" --target-path "$dest" ;;
  azcopy)
    exec "$AZCOPY" copy "$(endpoint)/$ds/*?$(sas_of "$ds")" "$dest" --recursive --from-to BlobLocal ;;
  esac
else
  src=$BENCH_WORK/data/$ds
  prefix=$tool-$ds-$(date +%s%N)
  export AZ_ENDPOINT=$(endpoint "$BENCH_UP_PORT")
  case $tool in
  rclone) exec rclone copy "$src" "azup:uploads/$prefix" ;;
  rclone-tuned)
    exec rclone copy "$src" "azup:uploads/$prefix" --transfers 16 --checkers 16 --no-check-dest \
      --azureblob-upload-concurrency 16 --azureblob-chunk-size 16M ;;
  python) exec "$PY" "$BENCH_HERE/azblob.py" upload "$src" uploads --prefix "$prefix" ;;
  stagehand) exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" upload up --src-dir "$src" --target-path "$prefix" ;;
  stagehand-md5all) # large files' whole MD5 computed and stored too
    STAGEHAND_AZURE_VERIFY_MD5=all exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" upload up --src-dir "$src" --target-path "$prefix" ;;
  stagehand-nomd5) # no Content-MD5 on blocks either
    STAGEHAND_AZURE_VERIFY_MD5=0 exec "$STAGEHAND" -q datastore -w "$(stagehand_workspace)" upload up --src-dir "$src" --target-path "$prefix" ;;
  azcopy)
    exec "$AZCOPY" copy "$src/*" "$AZ_ENDPOINT/uploads/$prefix?$SAS_up" --recursive --from-to LocalBlob ;;
  esac
fi
die "unknown tool $tool"
