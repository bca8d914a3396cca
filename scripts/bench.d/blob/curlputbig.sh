#!/usr/bin/env bash
# scripts/bench.d/blob/curlputbig.sh N: the emulator's raw ingest ceiling for the 1 GiB file.
# N curl processes each PUT one Nth of big/1GiB.bin as a block (Put Block), all at once,
# then one Put Block List commits them, into container uploads (upload Azurite) under a
# new prefix. The parts are cut once, before any timing, into $BENCH_WORK/parts-N (see
# blob.sh), with each part's MD5, so only the transfer is timed. Every block carries its
# Content-MD5: without one Azurite computes a CRC64 of the block in JavaScript, which
# makes the same upload about five times slower. Signed with the container SAS (SAS_up).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:?usage: curlputbig.sh N}
parts=$BENCH_WORK/parts-$n
[ -f "$parts/.done-md5" ] || die "no parts in $parts: blob.sh cuts them before timing"
url="$(endpoint "$BENCH_UP_PORT")/uploads/curl-big-$(date +%s%N)/1GiB.bin"
id() { printf 'block-%06d' "$1" | base64; }
pids=()
for ((k = 0; k < n; k++)); do
  curl -sSf -o /dev/null -H "Content-MD5: $(cat "$parts/$k.md5")" -T "$parts/$k" \
    "$url?comp=block&blockid=$(id "$k" | sed 's/=/%3D/g')&$SAS_up" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] || exit $rc
{
  echo '<?xml version="1.0" encoding="utf-8"?><BlockList>'
  for ((k = 0; k < n; k++)); do echo "<Latest>$(id "$k")</Latest>"; done
  echo '</BlockList>'
} | curl -sSf -o /dev/null -X PUT --data-binary @- "$url?comp=blocklist&$SAS_up"
