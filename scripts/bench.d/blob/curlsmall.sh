#!/usr/bin/env bash
# scripts/bench.d/blob/curlsmall.sh P: the emulator's raw request-rate ceiling for the small dataset.
# One curl process GETs all 10,000 blobs of container 'small' to /dev/null, P at a time
# over reused connections (curl --parallel), signed with the container SAS.
# Needs SAS_small in the environment (export_creds in lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
p=${1:?usage: curlsmall.sh PARALLEL}
list=$BENCH_WORK/small.list
[ -s "$list" ] || (cd "$DATA/small" && find . -type f | LC_ALL=C sort | sed 's|^\./||') >"$list"
# The config is written to curl's stdin; ENVIRON keeps awk from reading escapes in the SAS.
SAS=$SAS_small EP=$(endpoint) awk '{print "url = \"" ENVIRON["EP"] "/small/" $0 "?" ENVIRON["SAS"] "\"\noutput = \"/dev/null\""}' "$list" |
  curl -sSf --no-progress-meter --parallel --parallel-max "$p" -K -
