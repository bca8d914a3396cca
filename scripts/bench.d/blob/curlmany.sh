#!/usr/bin/env bash
# scripts/bench.d/blob/curlmany.sh DATASET P [down|disk|up]: the emulator's raw ceiling for a
# dataset of many blobs, one request per blob, P at a time over reused connections (curl --parallel).
#   down: GETs every blob of container DATASET (download Azurite) to /dev/null.
#   disk: the same, each blob written to a file under $BENCH_WORK/dl/trash/curl (the
#         emulator and the landing of the bytes together, as a download must).
#   up:   PUTs every file of $DATA/DATASET as one Put Blob into container uploads (upload
#         Azurite) under a new prefix.
# Signed with the container SAS (export_creds in lib.sh puts SAS_* in the environment).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ds=${1:?usage: curlmany.sh DATASET PARALLEL [down|disk|up]}
p=${2:?usage: curlmany.sh DATASET PARALLEL [down|disk|up]}
out=/dev/null
if [ "${3:-down}" = disk ]; then out=$BENCH_WORK/dl/trash/curl; fi
list=$BENCH_WORK/$ds.list
[ -s "$list" ] || (cd "$DATA/$ds" && find . -type f | LC_ALL=C sort | sed 's|^\./||') >"$list"
# The config is written to curl's stdin; ENVIRON keeps awk from reading escapes in the SAS.
if [ "${3:-down}" = up ]; then
  SAS=$SAS_up EP=$(endpoint "$BENCH_UP_PORT") DIR=$DATA/$ds PREFIX=curl-$ds-$(date +%s%N) awk '
    BEGIN { print "header = \"x-ms-blob-type: BlockBlob\"" }
    { print "url = \"" ENVIRON["EP"] "/uploads/" ENVIRON["PREFIX"] "/" $0 "?" ENVIRON["SAS"] "\"\nupload-file = \"" ENVIRON["DIR"] "/" $0 "\"\noutput = \"/dev/null\"" }' "$list"
else
  SAS=$(sas_of "$ds") EP=$(endpoint) DS=$ds OUT=$out awk '
    { print "url = \"" ENVIRON["EP"] "/" ENVIRON["DS"] "/" $0 "?" ENVIRON["SAS"] "\"\noutput = \"" (ENVIRON["OUT"] == "/dev/null" ? "/dev/null" : ENVIRON["OUT"] "/" $0) "\"" }' "$list"
fi | curl -sSf --no-progress-meter --create-dirs --parallel --parallel-max "$p" -K -
