#!/usr/bin/env bash
# scripts/bench.d/blob/curlget.sh N [OUT]: the emulator's raw serving ceiling for the 1 GiB blob.
# N curl processes each GET one Nth of big/1GiB.bin (Range header), all at once, signed
# with a read-only blob SAS from the SDK's generate_blob_sas. OUT defaults to /dev/null;
# given a file, each part goes to OUT.partK (then the disk is in the path too).
# Needs SAS_BLOB_big in the environment (anchors.sh sets it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:?usage: curlget.sh N [OUT]}
out=${2:-/dev/null}
size=1073741824
url="$(endpoint)/big/1GiB.bin?$SAS_BLOB_big"
part=$(((size + n - 1) / n))
pids=()
for ((k = 0; k < n; k++)); do
  start=$((k * part)); end=$((start + part - 1)); ((end >= size)) && end=$((size - 1))
  dst=$out; [ "$out" != /dev/null ] && dst=$out.part$k
  curl -sf -r "$start-$end" -o "$dst" "$url" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
