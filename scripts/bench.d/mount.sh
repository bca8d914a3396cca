#!/usr/bin/env bash
# stagehand's read-only FUSE mount vs rclone mount (--vfs-cache-mode off and full).
#
#   scripts/bench mount                 RUNS=3 by default
#   MOUNT_BENCH_BACKEND=azurite|local   where the data lives (default: azurite when the
#                                       blob benchmark's harness, bench.d/lib.sh, is here)
#   MOUNT_BENCH_TOOLS="disk stagehand rclone-off rclone-full"
#   MOUNT_BENCH_WHAT="ttfb seq small"   which measures
#   BENCH_WORK=DIR                      work folder for data, mounts, caches (default: mktemp)
#
# Datasets (deterministic): big = 1 x 1 GiB (1GiB.bin), small = 10,000 x 4 KiB in
# d0..d9/e0..e9/f000..f099.bin, the layout of the shared anchor harness.
#
# Measures, each on a fresh mount with the kernel's caches dropped:
#   ttfb   time to the first byte of the 1 GiB file (`head -c1`, no listing before it)
#   seq    a sequential read of the 1 GiB file (`cat > /dev/null`), MB/s
#   small  reading all 10,000 small files (`find | sort | xargs cat`), files/s
# and the peak RSS (VmHWM) of the process serving the mount (the agent; rclone).
# The tools take turns in each run; with both stagehand and rclone-full measured, the
# last lines give per measure the median of the paired ratios stagehand / rclone-full
# (same run; below 1.0 stagehand is faster) and stagehand's highest peak RSS.
# `disk` is the ceiling: the same reads from a local copy of the datasets.
#
# Backends: `azurite` (the comparison the mount issue asks for) serves the datasets from
# one private Azurite (bench.d/blob/data.sh, port $BENCH_PORT) to both tools: stagehand through
# azure_blob datastores, rclone through SAS remotes. `local` serves them from a local
# folder (stagehand's local datastore with STAGEHAND_LOCAL_MOUNT=fuse, rclone's local
# backend): it measures the FUSE layer, the read-ahead and the cache without a network.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
runs=${RUNS:-3}
here=$root/scripts/bench.d/blob # the blob benchmark's harness: lib.sh, data.sh, azurite.sh
if [ -f "$here/lib.sh" ] && [ -f "$here/data.sh" ]; then
  backend=${MOUNT_BENCH_BACKEND:-azurite}
else
  backend=${MOUNT_BENCH_BACKEND:-local}
fi
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "scripts/bench mount: $*" >&2; exit 1; }

case $backend in
local)
  work=${BENCH_WORK:-$(mktemp -d -t stagehand-bench-mount.XXXXXX)}
  ;;
azurite)
  [ -f "$here/lib.sh" ] || die "backend azurite needs the blob benchmark's harness (scripts/bench.d/blob/lib.sh, data.sh, azurite.sh), which this checkout does not have; use MOUNT_BENCH_BACKEND=local"
  grep -q 'pub mod azure' "$root/agent/src/store/mod.rs" ||
    die "backend azurite needs stagehand's Azure Blob store, which this build does not have; use MOUNT_BENCH_BACKEND=local"
  # shellcheck source=/dev/null
  . "$here/lib.sh"
  work=$BENCH_WORK
  ;;
*) die "unknown MOUNT_BENCH_BACKEND=$backend (azurite or local)" ;;
esac
mkdir -p "$work"

# --- tools -----------------------------------------------------------------------
tools=${MOUNT_BENCH_TOOLS:-disk stagehand rclone-off rclone-full}
need=()
case " $tools " in *" rclone-"*) command -v rclone >/dev/null || need+=(rclone) ;; esac
command -v fusermount3 >/dev/null || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "${STAGEHAND_BIN:-}" ]; then
  bin=$STAGEHAND_BIN
else
  say "building stagehand (release)"
  cargo build --release -q -p stagehand
  bin=${CARGO_TARGET_DIR:-$root/target}/release/stagehand
fi

# --- data ------------------------------------------------------------------------
if [ "$backend" = azurite ]; then
  say "datasets in Azurite on port $BENCH_PORT (bench.d/blob/data.sh)"
  # What data.sh needs: the Azure SDK (to upload the datasets) and Azurite.
  if [ ! -x "$PY" ]; then
    python3 -m venv "$BENCH_WORK/venv" && "$PY" -m pip install -q azure-storage-blob
  fi
  if [ ! -x "$AZURITE" ]; then
    npm install --prefix "$BENCH_WORK/npm" --no-audit --no-fund --silent "azurite@$AZURITE_VERSION" >/dev/null
  fi
  export AZURITE
  bash "$here/data.sh" >&2
  case " $tools " in *" rclone-"*) export_creds ;; esac
  big_dir=$DATA/big small_dir=$DATA/small
else
  data=$work/store/data
  if [ ! -f "$work/store/.done" ]; then
    say "making the datasets in $data"
    rm -rf "$work/store"
    mkdir -p "$data/big" "$data/small"
    python3 - "$data" <<'PY'
import os, sys, random
d = sys.argv[1]
r = random.Random(42)
with open(os.path.join(d, "big", "1GiB.bin"), "wb") as f:
    block = r.randbytes(8 << 20)
    for i in range(128):
        f.write(block[i:] + block[:i])
for a in range(10):
    for b in range(10):
        p = os.path.join(d, "small", f"d{a}", f"e{b}")
        os.makedirs(p, exist_ok=True)
        for c in range(100):
            with open(os.path.join(p, f"f{c:03d}.bin"), "wb") as f:
                f.write(r.randbytes(4096))
PY
    touch "$work/store/.done"
  fi
  big_dir=$data/big small_dir=$data/small
fi
big_md5=$(md5sum "$big_dir/1GiB.bin" | cut -d' ' -f1)

# --- the reader (one measure on one mount) ---------------------------------------
reader=$work/read.sh
cat >"$reader" <<'SH'
#!/usr/bin/env bash
# read.sh DIR ttfb|seq|small|md5: one measure; DIR holds 1GiB.bin (ttfb, seq, md5) or
# the small files; prints "RESULT what seconds" (and, under stagehand, the agent's peak
# RSS: the job's parent is the agent).
set -euo pipefail
mnt=$1 what=$2
now() { date +%s.%N; }
t0=$(now)
case $what in
ttfb) head -c1 "$mnt/1GiB.bin" >/dev/null ;;
seq) cat "$mnt/1GiB.bin" >/dev/null ;;
small) (cd "$mnt" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat >/dev/null) ;;
md5) md5sum "$mnt/1GiB.bin" | cut -d' ' -f1 ;;
esac
t1=$(now)
echo "RESULT $what $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
if [ -n "${STAGEHAND_RUN_ID:-}" ]; then
  echo "RSS $(awk '/VmHWM/ {print $2}' "/proc/$PPID/status")"
fi
SH
chmod +x "$reader"

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; else DROPPED=no; fi
}
DROPPED=yes

# --- one measure per tool ----------------------------------------------------------
ws=$work/mount-workspace.yaml
if [ "$backend" = azurite ]; then
  export STAGEHAND_BENCH_KEY=$ACCOUNT_KEY
  {
    echo "datastores:"
    for c in big small; do
      printf '  %s: {type: azure_blob, account_name: %s, container_name: %s, endpoint: "%s", credentials: {account_key: {env: STAGEHAND_BENCH_KEY}}}\n' \
        "$c" "$ACCOUNT" "$c" "$(endpoint)"
    done
  } >"$ws"
  input_of() { case $1 in small) echo '{datastore: small, path: "", mode: mount}' ;; *) echo '{datastore: big, path: "", mode: mount}' ;; esac; }
  remote_of() { case $1 in small) echo azsmall:small ;; *) echo azbig:big ;; esac; }
  local_env=
else
  printf 'datastores:\n  local: {type: local, root: %s}\n' "$work/store" >"$ws"
  input_of() { case $1 in small) echo '{datastore: local, path: data/small, mode: mount}' ;; *) echo '{datastore: local, path: data/big, mode: mount}' ;; esac; }
  remote_of() { case $1 in small) echo "$small_dir" ;; *) echo "$big_dir" ;; esac; }
  local_env=STAGEHAND_LOCAL_MOUNT=fuse
  export RCLONE_CONFIG=/dev/null
fi

stagehand_job() { # WHAT -> job file
  local job=$work/mount-job-$1.yaml
  printf 'name: bench-mount\ncommand: ["bash", "%s", "$AZUREML_DATAREFERENCE_data", "%s"]\ninputs:\n  data: %s\n' \
    "$reader" "$1" "$(input_of "$1")" >"$job"
  echo "$job"
}

run_stagehand() { # JOB
  env $local_env STAGEHAND_RUNS_DIR="$work/runs" "$bin" -q run "$1" --workspace "$ws"
}

# Prints "seconds rss_kib".
measure_stagehand() { # WHAT
  local job out
  job=$(stagehand_job "$1")
  drop_caches
  out=$(run_stagehand "$job")
  echo "$(echo "$out" | awk '/^RESULT/ {print $3}') $(echo "$out" | awk '/^RSS/ {print $2}')"
}

measure_rclone() { # MODE WHAT
  local mnt cache pid out rss
  mnt=$(mktemp -d -p "$work" mnt.XXXXXX)
  cache=$(mktemp -d -p "$work" vfscache.XXXXXX)
  rclone mount "$(remote_of "$2")" "$mnt" --read-only --vfs-cache-mode "$1" --cache-dir "$cache" 2>>"$work/rclone.log" &
  pid=$!
  for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
  mountpoint -q "$mnt" || die "rclone mount did not come up (see $work/rclone.log)"
  drop_caches
  out=$(bash "$reader" "$mnt" "$2")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  fusermount3 -u "$mnt"
  wait "$pid" || true
  rmdir "$mnt"
  rm -rf "$cache"
  echo "$(echo "$out" | awk '/^RESULT/ {print $3}') $rss"
}

measure_disk() { # WHAT
  local dir=$big_dir
  [ "$1" = small ] && dir=$small_dir
  drop_caches
  echo "$(bash "$reader" "$dir" "$1" | awk '/^RESULT/ {print $3}') -"
}

measure() { # TOOL WHAT
  case $1 in
  stagehand) measure_stagehand "$2" ;;
  rclone-off) measure_rclone off "$2" ;;
  rclone-full) measure_rclone full "$2" ;;
  disk) measure_disk "$2" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }

# --- check, then measure ---------------------------------------------------------
say "checking that stagehand's mount reads the 1 GiB file byte-exactly"
got=$(run_stagehand "$(stagehand_job md5)" | head -1)
[ "$got" = "$big_md5" ] || die "md5 through the mount is $got, expected $big_md5"

results=$work/mount-results.txt
: >"$results"
# The tools take turns within each run (stagehand, rclone-full, stagehand, ...), so a
# slow spell of a shared machine weighs on both sides of a pair alike.
for what in ${MOUNT_BENCH_WHAT:-ttfb seq small}; do
  for run in $(seq "$runs"); do
    for tool in $tools; do
      r=$(measure "$tool" "$what")
      say "$tool $what run $run: ${r% *} s (peak RSS ${r#* } KiB)"
      echo "$tool $what $r $run" >>"$results"
    done
  done
done

# --- table -----------------------------------------------------------------------
echo
echo "backend $backend, median of $runs runs, caches dropped: $DROPPED ($(nproc) cores, $(uname -r))"
echo
printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' tool "first byte" "1 GiB sequential" "10,000 x 4 KiB" "peak RSS (seq)"
printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' --- --- --- --- ---
for tool in $tools; do
  t=$(awk -v t="$tool" '$1 == t && $2 == "ttfb" {print $3}' "$results" | median)
  s=$(awk -v t="$tool" '$1 == t && $2 == "seq" {print $3}' "$results" | median)
  m=$(awk -v t="$tool" '$1 == t && $2 == "small" {print $3}' "$results" | median)
  rss=$(awk -v t="$tool" '$1 == t && $2 == "seq" && $4 != "-" {print $4}' "$results" | median)
  ttfb_ms=$(awk -v x="$t" 'BEGIN { printf "%.1f ms", x * 1000 }')
  seq_rate=$(awk -v x="$s" 'BEGIN { printf "%.2f s, %.0f MB/s", x, 1073.741824 / x }')
  small_rate=$(awk -v x="$m" 'BEGIN { printf "%.2f s, %.0f/s", x, 10000 / x }')
  rss_mib=$(awk -v x="$rss" 'BEGIN { if (x == "-") print "-"; else printf "%.0f MiB", x / 1024 }')
  printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' "$tool" "$ttfb_ms" "$seq_rate" "$small_rate" "$rss_mib"
done
# The paired ratios: stagehand's time over rclone-full's in the same run (below 1:
# stagehand is faster), their median, and stagehand's highest peak RSS.
case " $tools " in *" stagehand "*) both=$tools ;; *) both= ;; esac
case " $both " in *" rclone-full "*)
  echo
  for what in ${MOUNT_BENCH_WHAT:-ttfb seq small}; do
    ratios=$(awk -v w="$what" '$2 == w && $1 == "stagehand" {s[$5] = $3} $2 == w && $1 == "rclone-full" {r[$5] = $3}
      END { for (k in s) if (k in r && r[k] > 0) printf "%.3f\n", s[k] / r[k] }' "$results")
    [ -n "$ratios" ] || continue
    rss=$(awk -v w="$what" '$1 == "stagehand" && $2 == w && $4 != "-" && $4 > m {m = $4} END {print m + 0}' "$results")
    printf '%s: stagehand / rclone-full, median of %s paired runs: %s (each: %s); stagehand peak RSS at most %.0f MiB\n' \
      "$what" "$(echo "$ratios" | wc -l)" "$(echo "$ratios" | median)" "$(echo "$ratios" | sort -g | tr '\n' ' ' | sed 's/ $//')" \
      "$(awk -v x="$rss" 'BEGIN { print x / 1024 }')"
  done
  ;;
esac
echo
echo "raw results: $results"
