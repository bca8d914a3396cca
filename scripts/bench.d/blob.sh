#!/usr/bin/env bash
# scripts/bench.d/blob.sh [SECTION...]: stagehand against AzCopy, rclone (defaults and
# tuned) and the Azure Python SDK, on the same private Azurite, in one run.
#   sections (default: ceiling download upload; paired is run only when named)
#   ceiling   curl: 16 parallel ranged GETs of the 1 GiB blob; one GET per blob of the
#             others, 16 (medium) or 32 (small) at a time; each to /dev/null (the
#             emulator alone), and again to files (the emulator and the landing of the bytes)
#   download  each tool: container -> empty local dir       (big, medium, small)
#   upload    each tool: local dir -> fresh prefix on an emptied upload Azurite; first
#             curl, the ceiling: 16 parallel Put Blocks of the 1 GiB file (each with
#             its Content-MD5) and a Put Block List, or one Put Blob per file, 16 or 32
#             at a time
#   paired    the ceiling (to /dev/null, and to files) and stagehand in turn, RUNS rounds
#             per dataset and direction, and stagehand's share of the ceiling per round
#             (paired.py): the VM's speed drifts between hours, and the other sections
#             measure the ceiling minutes before stagehand
# Env: RUNS (3), WARMUP (1), TOOLS (stagehand stagehand-md5all stagehand-nomd5 rclone-tuned
#      rclone python azcopy; the stagehand variants upload only big, the others are alike),
#      DATASETS (big medium small), DIRECTIONS (down up: those paired measures),
#      BENCH_WORK (where data and results go; a mktemp dir by default, remembered in
#      .tools/bench-workdir).
# Every command is timed as a whole process by /usr/bin/time (wall, CPU, peak RSS), after
# dropping the page cache, and every run after deleting the last run's output; downloads
# land on an ext4 file system of their own (output_fs); every download's bytes are
# checked against the md5 manifest.
# Helpers in bench.d/blob/, adapted from the shared anchor harness (setup.sh, data.sh,
# xfer.sh, table.py).
set -euo pipefail
. "$(dirname "$0")/blob/lib.sh"

RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
TOOLS=${TOOLS:-stagehand stagehand-md5all stagehand-nomd5 rclone-tuned rclone python azcopy}
DATASETS=${DATASETS:-big medium small}
SECTIONS=${*:-ceiling download upload}
export DATA BENCH_WORK
export RESULTS=${BENCH_RESULTS:-$BENCH_WORK/results-$(date +%Y%m%d-%H%M%S)}

bash "$BENCH_HERE/setup.sh" >/dev/null
(cd "$BENCH_REPO" && cargo build --release -p stagehand --quiet)
bash "$BENCH_HERE/data.sh"
mkdir -p "$RESULTS" "$AZCOPY_LOG_LOCATION" "$AZCOPY_JOB_PLAN_LOCATION"
bash "$BENCH_HERE/azurite.sh" start "$BENCH_PORT" >/dev/null
bash "$BENCH_HERE/versions.sh" >"$RESULTS/versions.txt"
echo "stagehand:          $("$STAGEHAND" --version) ($STAGEHAND)" >>"$RESULTS/versions.txt"
export_creds
SAS_BLOB_big=$(azblob sas big 1GiB.bin)
export SAS_BLOB_big

bytes_of() { case $1 in big) echo 1073741824 ;; medium) echo 1048576000 ;; small) echo 40960000 ;; esac; }
files_of() { case $1 in big) echo 1 ;; medium) echo 100 ;; small) echo 10000 ;; esac; }
parallel_of() { case $1 in medium) echo 16 ;; small) echo 32 ;; esac; } # curl's requests in flight

# The 1 GiB file cut into N parts for curlputbig.sh, each with its MD5, once and untimed.
cut_parts() { # N
  local dir=$BENCH_WORK/parts-$1 f k
  [ -f "$dir/.done-md5" ] && return
  rm -rf "$dir"
  mkdir -p "$dir"
  split -n "$1" -a 4 -d "$DATA/big/1GiB.bin" "$dir/p"
  for f in "$dir"/p*; do
    k=$((10#${f##*/p}))
    mv "$f" "$dir/$k"
    openssl md5 -binary "$dir/$k" | base64 >"$dir/$k.md5"
  done
  touch "$dir/.done-md5"
}

# Downloads land on a file system of their own, $BENCH_WORK/dl: a fresh ext4 with a journal
# (as an Azure VM's disks are), in a loop-mounted image made for this bench run. This
# machine's own root is ext4 *without* a journal, whose inode allocator skips every inode
# deleted in the last few minutes (recently_deleted() in fs/ext4/ialloc.c): creating
# 10,000 files after deleting the last run's 10,000 took 0.2 s, 3 s, 6 s, 8 s of kernel
# time in four cycles, growing with each. That measures this VM, not the tools, and
# falls hardest on whichever tool runs later. Without root or a loop device the
# downloads go to the work dir's own file system, and the results say so.
OUT_FS="the work dir's file system ($(findmnt -n -o FSTYPE -T "$BENCH_WORK"))"
output_fs() {
  local img=$BENCH_WORK/dl.img mnt=$BENCH_WORK/dl
  if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null || ! losetup -f >/dev/null 2>&1; then
    echo "warning: downloads land on $OUT_FS: a file system of their own needs root, mkfs.ext4 and a loop device" >&2
    return
  fi
  mountpoint -q "$mnt" && umount -l "$mnt"
  rm -rf "$mnt" "$img"
  mkdir -p "$mnt"
  truncate -s 8G "$img"
  mkfs.ext4 -q -F "$img"
  mount -o loop "$img" "$mnt"
  OUT_FS="ext4 with a journal, 8 GiB loop image, made for this run"
  # Lazily: a tool still holding a file open must not leave the mount behind.
  trap 'umount -l "$BENCH_WORK/dl" 2>/dev/null; rm -f "$BENCH_WORK/dl.img"' EXIT
}

# Before every run, untimed: the last run's output deleted and its dirty pages written.
# Kept outputs would make each run fill the page cache with memory the VM has not touched
# since it was handed back to the host (free page reporting), a cost of 0.5-1.5 s per
# GiB that falls on whichever runs come later; a node deletes or reuses as it goes.
fresh_output() {
  mkdir -p "$BENCH_WORK/dl"
  find "$BENCH_WORK/dl" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
  mkdir -p "$BENCH_WORK/dl/trash"
  sync
}

time_loop() {
  local t i
  t=$(mktemp)
  for ((i = 0; i < WARMUP; i++)); do fresh_output; "$@" >/dev/null 2>&1 </dev/null || true; done
  for ((i = 0; i < RUNS; i++)); do
    fresh_output
    /usr/bin/time -a -o "$t" -f '%e %U %S %M %x' "$@" >/dev/null 2>&1 </dev/null || true
  done
  echo "timer: /usr/bin/time, $RUNS runs after $WARMUP warm-up"
  echo "A exit $(awk '$5 == 0' "$t" | wc -l) of $RUNS with exit 0"
  awk '{ print $1, $2, $3, $2 + $3, $4 / 1024 }' "$t" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin]
for k, name in enumerate(["wall s", "user s", "sys s", "cpu s", "peak MiB"]):
    v = sorted(r[k] for r in rows)
    print(f"A {name:14} {v[0]:11.3f} {statistics.median(v):11.3f} {v[-1]:11.3f}")'
  rm -f "$t"
}

timer() { # SECONDS CMD...
  local limit=$1; shift
  timeout "$limit" bash -c "$(declare -f fresh_output time_loop); RUNS=$RUNS WARMUP=$WARMUP time_loop \"\$@\"" _ "$@"
}

# Same state before every command: no stale outputs, nothing dirty, page cache empty, and
# a freshly started download Azurite (one that has served many requests answers each
# more slowly, which would penalise whichever tool runs later).
settle() {
  bash "$BENCH_HERE/azurite.sh" stop "$BENCH_PORT" >/dev/null
  bash "$BENCH_HERE/azurite.sh" start "$BENCH_PORT" >/dev/null
  fresh_output
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
  sleep 2
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$(bash "$BENCH_HERE/azurite.sh" pid "$1")/stat"; }

record() { # NAME BYTES FILES PORT LIMIT CMD...
  local name=$1 bytes=$2 files=$3 port=$4 limit=$5
  shift 5
  settle
  local a0 a1 rc=0
  a0=$(cpu_ticks "$port")
  timer "$limit" "$@" >"$RESULTS/$name.txt" 2>&1 || rc=$?
  a1=$(cpu_ticks "$port")
  local azcpu
  azcpu=$(awk -v d=$((a1 - a0)) -v n=$((RUNS + WARMUP)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$bytes" "$files" "$azcpu" "$rc" "${VERIFY:-}" >>"$RESULTS/meta.tsv"
  echo "$(date +%T) $name: $(grep -E '^A wall s' "$RESULTS/$name.txt" | awk '{print "median", $5, "s"}'), peak $(grep -E '^A peak MiB' "$RESULTS/$name.txt" | awk '{print $5}') MiB, rc=$rc"
}

verify_download() { # TOOL DATASET
  if (cd "$BENCH_WORK/dl/$1-$2" && md5sum -c --quiet --strict "$DATA/$2.md5" >/dev/null 2>&1) &&
    [ "$(find "$BENCH_WORK/dl/$1-$2" -type f | wc -l)" = "$(files_of "$2")" ]; then
    echo "md5 ok"
  else echo "MISMATCH"; fi
}

verify_upload() { # DATASET
  AZ_ENDPOINT=$(endpoint "$BENCH_UP_PORT") azblob ls uploads |
    awk -v f="$(files_of "$1")" -v b="$(bytes_of "$1")" '
      { split($2, p, "/"); n[p[1]]++; s[p[1]] += $1 }
      END { ok = 0; bad = 0
            for (k in n) if (n[k] == f && s[k] == b) ok++; else bad++
            printf "%d prefixes complete, %d short", ok, bad }'
}

# One timed run of CMD after an untimed warm-up, each on a fresh output: its wall seconds.
one_run() { # CMD...
  local t
  t=$(mktemp)
  fresh_output
  "$@" >/dev/null 2>&1 </dev/null || true
  fresh_output
  /usr/bin/time -o "$t" -f '%e' "$@" >/dev/null 2>&1 </dev/null || echo "warning: $* failed" >&2
  tail -1 "$t"
  rm -f "$t"
}

settle_upload() {
  fresh_upload_azurite >/dev/null
  settle
}

fresh_upload_azurite() {
  bash "$BENCH_HERE/azurite.sh" reset "$BENCH_UP_PORT" >/dev/null
  bash "$BENCH_HERE/azurite.sh" start "$BENCH_UP_PORT" >/dev/null
  AZ_ENDPOINT=$(endpoint "$BENCH_UP_PORT") azblob mkcontainer uploads
}

output_fs
echo "download target:    $OUT_FS" >>"$RESULTS/versions.txt"
for section in $SECTIONS; do
  echo "== $section"
  case $section in
  ceiling)
    for ds in $DATASETS; do
      case $ds in
      big)
        record ceiling-curl-big-x16 "$(bytes_of big)" 1 "$BENCH_PORT" 300 bash "$BENCH_HERE/curlget.sh" 16
        # The same, each part written to a file: the emulator and this disk together.
        record ceiling-curl-big-x16-disk "$(bytes_of big)" 1 "$BENCH_PORT" 300 \
          bash "$BENCH_HERE/curlget.sh" 16 "$BENCH_WORK/dl/trash/big" ;;
      *) record "ceiling-curl-$ds-p$(parallel_of "$ds")" "$(bytes_of "$ds")" "$(files_of "$ds")" "$BENCH_PORT" 300 \
          bash "$BENCH_HERE/curlmany.sh" "$ds" "$(parallel_of "$ds")"
        record "ceiling-curl-$ds-p$(parallel_of "$ds")-disk" "$(bytes_of "$ds")" "$(files_of "$ds")" "$BENCH_PORT" 300 \
          bash "$BENCH_HERE/curlmany.sh" "$ds" "$(parallel_of "$ds")" disk ;;
      esac
    done
    ;;
  download)
    for ds in $DATASETS; do
      for tool in $TOOLS; do
        VERIFY="" record "down-$tool-$ds" "$(bytes_of "$ds")" "$(files_of "$ds")" "$BENCH_PORT" 590 \
          bash "$BENCH_HERE/xfer.sh" "$tool" down "$ds"
        v=$(verify_download "$tool" "$ds")
        sed -i "\$s/\t\$/\t$v/" "$RESULTS/meta.tsv"
        echo "   $v"
      done
    done
    ;;
  upload)
    for ds in $DATASETS; do
      [ "$ds" = small ] && [ -z "${UPLOAD_SMALL:-}" ] && continue # as the anchors: set UPLOAD_SMALL=1 to include it
      fresh_upload_azurite # the ceiling: curl, one request per blob (per block for big)
      case $ds in
      big)
        cut_parts 16
        record ceiling-up-curl-big-x16 "$(bytes_of big)" 1 "$BENCH_UP_PORT" 300 bash "$BENCH_HERE/curlputbig.sh" 16 ;;
      *) record "ceiling-up-curl-$ds-p$(parallel_of "$ds")" "$(bytes_of "$ds")" "$(files_of "$ds")" "$BENCH_UP_PORT" 590 \
        bash "$BENCH_HERE/curlmany.sh" "$ds" "$(parallel_of "$ds")" up ;;
      esac
      echo "   $(verify_upload "$ds")"
      for tool in $TOOLS; do
        # The variants differ from stagehand only in the blocks of large files.
        case $tool in stagehand-*) [ "$ds" = big ] || continue ;; esac
        fresh_upload_azurite
        VERIFY="" record "up-$tool-$ds" "$(bytes_of "$ds")" "$(files_of "$ds")" "$BENCH_UP_PORT" 590 \
          bash "$BENCH_HERE/xfer.sh" "$tool" up "$ds"
        v=$(verify_upload "$ds")
        sed -i "\$s/\t\$/\t$v/" "$RESULTS/meta.tsv"
        echo "   $v"
      done
    done
    bash "$BENCH_HERE/azurite.sh" reset "$BENCH_UP_PORT" >/dev/null
    ;;
  paired)
    # The ceiling and stagehand in turn, RUNS rounds per dataset and direction: each round
    # measures them within seconds of each other, so this VM's drift in speed (the medium
    # ceiling has measured 0.63-0.92 s on different hours, 1.2-2.4 s on a slower VM) falls
    # on both alike. Each run follows a warm-up, in the state record() gives; the ratios
    # are per round.
    DIRECTIONS=${DIRECTIONS:-down up}
    for ds in $DATASETS; do
      [[ " $DIRECTIONS " == *" down "* ]] || continue
      for ((i = 1; i <= RUNS; i++)); do
        case $ds in
        big) c=(bash "$BENCH_HERE/curlget.sh" 16) k=(bash "$BENCH_HERE/curlget.sh" 16 "$BENCH_WORK/dl/trash/big") ;;
        *) c=(bash "$BENCH_HERE/curlmany.sh" "$ds" "$(parallel_of "$ds")") k=("${c[@]}" disk) ;;
        esac
        settle; tc=$(one_run "${c[@]}")
        settle; tk=$(one_run "${k[@]}")
        settle; ts=$(one_run bash "$BENCH_HERE/xfer.sh" stagehand down "$ds")
        printf 'down\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$i" "$tc" "$tk" "$ts" | tee -a "$RESULTS/paired.tsv"
      done
      echo "   $(verify_download stagehand "$ds")"
    done
    for ds in $DATASETS; do
      [[ " $DIRECTIONS " == *" up "* ]] || continue
      [ "$ds" = small ] && [ -z "${UPLOAD_SMALL:-}" ] && continue
      [ "$ds" = big ] && cut_parts 16
      for ((i = 1; i <= RUNS; i++)); do
        case $ds in
        big) c=(bash "$BENCH_HERE/curlputbig.sh" 16) ;;
        *) c=(bash "$BENCH_HERE/curlmany.sh" "$ds" "$(parallel_of "$ds")" up) ;;
        esac
        settle_upload; tc=$(one_run "${c[@]}")
        settle_upload; ts=$(one_run bash "$BENCH_HERE/xfer.sh" stagehand up "$ds")
        printf 'up\t%s\t%s\t%s\t\t%s\n' "$ds" "$i" "$tc" "$ts" | tee -a "$RESULTS/paired.tsv"
      done
      echo "   $(verify_upload "$ds")"
    done
    bash "$BENCH_HERE/azurite.sh" reset "$BENCH_UP_PORT" >/dev/null
    ;;
  *) die "unknown section $section" ;;
  esac
done
echo
cat "$RESULTS/versions.txt"
if [ -s "$RESULTS/meta.tsv" ]; then
  echo
  python3 "$BENCH_HERE/table.py" "$RESULTS" "$WARMUP" | tee "$RESULTS/table.md"
  echo
  python3 "$BENCH_HERE/ratios.py" "$RESULTS" | tee "$RESULTS/ratios.md"
fi
if [ -s "$RESULTS/paired.tsv" ]; then
  echo
  python3 "$BENCH_HERE/paired.py" "$RESULTS/paired.tsv" | tee "$RESULTS/paired.md"
fi
echo "results: $RESULTS"
