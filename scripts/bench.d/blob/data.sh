#!/usr/bin/env bash
# scripts/bench.d/blob/data.sh: make the datasets (deterministic) and upload them once into the download
# Azurite (port $BENCH_PORT, default 10100; started here if it is not running).
#   big     1 x 1 GiB            container big
#   small   10,000 x 4 KiB       container small   (d0..d9/e0..e9/f000..f099.bin)
#   medium  100 x 10 MiB         container medium
# Each blob gets its Content-MD5, as rclone or AzCopy --put-md5 uploads would have,
# so the download tools that verify MD5 (rclone, AzCopy) do so.
# Manifests: $BENCH_WORK/data/NAME.md5 (md5sum format, paths relative to the dataset dir).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$DATA"
if [ ! -f "$DATA/.done" ]; then
  echo "generating datasets in $DATA"
  rm -rf "$DATA/big" "$DATA/small" "$DATA/medium"
  python3 "$BENCH_HERE/gen.py" "$DATA"
  for d in big small medium; do
    (cd "$DATA/$d" && find . -type f | LC_ALL=C sort | xargs md5sum >"$DATA/$d.md5")
  done
  touch "$DATA/.done"
fi
echo "expected md5 of big/1GiB.bin: $(cut -d' ' -f1 "$DATA/big.md5")"

bash "$BENCH_HERE/azurite.sh" start "$BENCH_PORT"
azblob mkcontainer big small medium
for d in big small medium; do
  want=$(wc -l <"$DATA/$d.md5")
  have=$(azblob ls "$d" | wc -l)
  if [ "$have" != "$want" ]; then
    echo "uploading $d ($want files)"
    azblob upload "$DATA/$d" "$d" --md5
  fi
  echo "container $d: $(azblob ls "$d" | wc -l) blobs, $(azblob ls "$d" | awk '{s+=$1} END {print s}') bytes"
done
