#!/usr/bin/env bash
# S3 (moto) through stagehand vs the same shapes on Azurite through stagehand, and vs rclone on the same moto; paired rounds.
#
#   scripts/bench s3                          small shapes: 1 x 256 MiB, 20 x 10 MiB, 500 x 4 KiB
#   BIG_MIB=1024 MEDIUM=100 SMALL=2000 scripts/bench s3
#                                             issue 30's shapes: 1 GiB, 100 x 10 MiB, 2,000 x 4 KiB
#   RUNS=N                                    rounds (default 3); a round runs every tool once per
#                                             shape and direction, one after the other (the tools'
#                                             order turns each round), so the machine's drift
#                                             falls on all alike
#   TOOLS="stagehand-s3 stagehand-azurite rclone-s3"
#   SHAPES="big medium small"  DIRECTIONS="down up"
#   STAGEHAND=PATH                            the binary (default: a release build of this
#                                             checkout, built here)
#   BENCH_WORK=DIR                            work folder (data, Azurite's storage, downloads)
#
# Servers: moto from .tools/venv, started by tests/common/s3.py serve (the tests' launcher:
# its ranged GET reads only the range asked for; moto alone reads the whole object for
# each range), on $S3_BENCH_PORT (10190); Azurite (scripts/azurite.version, as the blob
# benchmark) on $S3_BENCH_AZ_PORT (10191). Both hold the data sets, loaded once, untimed,
# with `stagehand datastore upload`.
# Tools: stagehand `datastore download/upload` with its defaults (S3: 32 MiB parts, 16 at
# a time, 64 MiB ranges for the large file); rclone 1.60 (Debian) `copy` with
# --transfers 16 --checkers 16 --multi-thread-streams 16 --s3-chunk-size 32M
# --s3-upload-cutoff 32M --s3-upload-concurrency 16 (the same parts and parallelism).
# Each transfer is one whole process timed by /usr/bin/time (wall, peak RSS), after its
# last output is deleted, writes synced and (as root) the page cache dropped. Each
# download is checked byte-exact (md5sum manifest); each upload by its object count.
# Prints the median wall seconds (and MB/s) per tool, shape and direction, and each
# tool's median ratio to stagehand on S3 per round.
set -euo pipefail
. "$(dirname "$0")/blob/lib.sh"
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-256}
MEDIUM=${MEDIUM:-20}
SMALL=${SMALL:-500}
TOOLS=${TOOLS:-stagehand-s3 stagehand-azurite rclone-s3}
SHAPES=${SHAPES:-big medium small}
DIRECTIONS=${DIRECTIONS:-down up}
S3_PORT=${S3_BENCH_PORT:-10190}
AZ_PORT=${S3_BENCH_AZ_PORT:-10191}
VENV_PY=${STAGEHAND_TEST_PYTHON:-$BENCH_REPO/.tools/venv/bin/python}
[ -x "$VENV_PY" ] || die "no Python with moto and boto3 at $VENV_PY: run scripts/test's setup or set STAGEHAND_TEST_PYTHON"
command -v rclone >/dev/null || die "no rclone: apt-get install -y rclone"
if [ ! -x "$AZURITE" ]; then
  AZURITE=$BENCH_REPO/.tools/npm/node_modules/.bin/azurite-blob
  [ -x "$AZURITE" ] || AZURITE=$(command -v azurite-blob) || die "no Azurite: run scripts/test's setup or set AZURITE"
fi
export AZURITE
if [ -z "${STAGEHAND:-}" ]; then
  (cd "$BENCH_REPO" && cargo build --release -p stagehand --quiet)
  STAGEHAND=${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/stagehand
fi
work=$BENCH_WORK/s3-bench
data=$work/data-$BIG_MIB-$MEDIUM-$SMALL
dl=$work/dl
mkdir -p "$work"

# The shapes, deterministic: big/big.bin, medium/mNNN.bin, small/dN/fNNNN.bin; with md5 manifests.
if [ ! -f "$data/.done" ]; then
  echo "generating the data sets in $data" >&2
  rm -rf "$data"
  python3 - "$data" "$BIG_MIB" "$MEDIUM" "$SMALL" <<'PY'
import hashlib, os, random, sys
root, big, medium, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def write(rel, seed, size, manifest):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    r, h = random.Random(seed), hashlib.md5()
    with open(p, "wb") as f:
        left = size
        while left:
            b = r.randbytes(min(left, 1 << 20))
            f.write(b); h.update(b); left -= len(b)
    manifest.append(f"{h.hexdigest()}  {rel.split('/', 1)[1]}\n")
for shape, files in [
    ("big", [("big/big.bin", 1, big << 20)]),
    ("medium", [(f"medium/m{i:03}.bin", 10 + i, 10 << 20) for i in range(medium)]),
    ("small", [(f"small/d{i % 10}/f{i:04}.bin", 100_000 + i, 4096) for i in range(small)]),
]:
    manifest = []
    for rel, seed, size in files:
        write(rel, seed, size, manifest)
    open(os.path.join(root, shape + ".md5"), "w").writelines(manifest)
PY
  touch "$data/.done"
fi
bytes_of() { du -sb --apparent-size "$data/$1" | cut -f1; }
files_of() { find "$data/$1" -type f | wc -l; }

# moto, by the tests' launcher; stopped by its pid.
moto_pid=
stop_all() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  bash "$BENCH_HERE/azurite.sh" reset "$AZ_PORT" >/dev/null 2>&1 || true
}
trap stop_all EXIT
if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then die "port $S3_PORT is taken"; fi
setsid "$VENV_PY" "$BENCH_REPO/tests/common/s3.py" serve "$S3_PORT" >"$work/moto.log" 2>&1 </dev/null &
moto_pid=$!
for _ in $(seq 150); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.2; done
bash "$BENCH_HERE/azurite.sh" reset "$AZ_PORT" >/dev/null
bash "$BENCH_HERE/azurite.sh" start "$AZ_PORT" >/dev/null
S3_ENDPOINT=http://127.0.0.1:$S3_PORT "$VENV_PY" "$BENCH_REPO/tests/common/s3.py" mkbucket bench uploads

# Any key pair signs for moto; Azurite's is the well-known development key.
export AWS_ACCESS_KEY_ID=bench-key-id AWS_SECRET_ACCESS_KEY=bench-secret
ws=$work/workspace.yaml
cat >"$ws" <<EOF
datastores:
  s3: {type: s3, bucket: bench, endpoint: "http://127.0.0.1:$S3_PORT"}
  s3up: {type: s3, bucket: uploads, endpoint: "http://127.0.0.1:$S3_PORT"}
  az: {type: azure_blob, account_name: $ACCOUNT, container_name: bench, endpoint: "$(endpoint "$AZ_PORT")", credentials: {account_key: {env: ACCOUNT_KEY}}}
  azup: {type: azure_blob, account_name: $ACCOUNT, container_name: uploads, endpoint: "$(endpoint "$AZ_PORT")", credentials: {account_key: {env: ACCOUNT_KEY}}}
EOF
sd() { "$STAGEHAND" -q datastore -w "$ws" "$@"; }
sd check az --create-if-not-exists >/dev/null
sd check azup --create-if-not-exists >/dev/null
for shape in $SHAPES; do
  for ds in s3 az; do sd upload "$ds" --src-dir "$data/$shape" --target-path "$shape" >/dev/null; done
done
unset AWS_CA_BUNDLE # rclone 1.60 cannot load one into its own transport
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other \
  RCLONE_CONFIG_MOTO_ENDPOINT=http://127.0.0.1:$S3_PORT RCLONE_CONFIG_MOTO_REGION=us-east-1 \
  RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true
RCLONE_FLAGS="--transfers 16 --checkers 16 --multi-thread-streams 16 --s3-chunk-size 32M --s3-upload-cutoff 32M --s3-upload-concurrency 16 --s3-no-check-bucket"

# One transfer, as one process for /usr/bin/time (bash -c, with these exported).
transfer() { # TOOL DIRECTION SHAPE DEST-OR-PREFIX
  case $1/$2 in
  stagehand-s3/down) sd download s3 --prefix "$3" --target-path "$4" ;;
  stagehand-azurite/down) sd download az --prefix "$3" --target-path "$4" ;;
  rclone-s3/down) rclone copy "moto:bench/$3" "$4/$3" $RCLONE_FLAGS ;;
  stagehand-s3/up) sd upload s3up --src-dir "$data/$3" --target-path "$4" ;;
  stagehand-azurite/up) sd upload azup --src-dir "$data/$3" --target-path "$4" ;;
  rclone-s3/up) rclone copy "$data/$3" "moto:uploads/$4" $RCLONE_FLAGS ;;
  esac
}
export -f transfer sd
export STAGEHAND ws data RCLONE_FLAGS ACCOUNT_KEY

uploaded() { # TOOL PREFIX: objects under it
  case $1 in
  stagehand-azurite) sd ls -r azup "$2" | grep -c . ;;
  *) rclone lsf -R --files-only "moto:uploads/$2" | grep -c . ;;
  esac
}

results=$work/results-$(date +%Y%m%d-%H%M%S).tsv
echo "stagehand: $("$STAGEHAND" --version) ($STAGEHAND); $(rclone --version | head -1); moto $("$VENV_PY" -c 'import moto; print(moto.__version__)'); Azurite $AZURITE_VERSION"
echo "shapes: big 1 x $BIG_MIB MiB, medium $MEDIUM x 10 MiB, small $SMALL x 4 KiB; $RUNS rounds; raw times in $results"
read -r -a tools <<<"$TOOLS"
for ((round = 1; round <= RUNS; round++)); do
  for shape in $SHAPES; do
    for dir in $DIRECTIONS; do
      n=${#tools[@]}
      for ((k = 0; k < n; k++)); do
        tool=${tools[$(((k + round - 1) % n))]}
        rm -rf "$dl"
        mkdir -p "$dl"
        sync
        if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
        dest=$dl
        [ "$dir" = up ] && dest=r$round-$tool-$shape
        t=$(mktemp)
        rc=0
        /usr/bin/time -o "$t" -f '%e %M' bash -c 'transfer "$@"' _ "$tool" "$dir" "$shape" "$dest" \
          >"$work/last.log" 2>&1 </dev/null || rc=$?
        read -r wall rss < <(tail -1 "$t")
        rm -f "$t"
        if [ "$rc" != 0 ]; then
          check="FAILED (exit $rc): $(tail -1 "$work/last.log")"
        elif [ "$dir" = down ]; then
          if (cd "$dl/$shape" && md5sum -c --quiet --strict "$data/$shape.md5" >/dev/null 2>&1) &&
            [ "$(find "$dl/$shape" -type f | wc -l)" = "$(files_of "$shape")" ]; then
            check="md5 ok"
          else check="MISMATCH"; fi
        else
          got=$(uploaded "$tool" "$dest")
          if [ "$got" = "$(files_of "$shape")" ]; then check="$got objects"; else check="SHORT: $got objects"; fi
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$shape" "$dir" "$tool" "$wall" "$rss" "$check" >>"$results"
        printf '%s round %s %-6s %-4s %-18s %7.2f s  peak %6.0f MiB  %s\n' "$(date +%T)" "$round" "$shape" "$dir" "$tool" "$wall" "$((rss / 1024))" "$check"
      done
    done
  done
done
rm -rf "$dl"
echo
python3 - "$results" "$data" <<'PY'
import collections, os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
data = sys.argv[2]
size = {s: sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(data, s)) for f in fs)
        for s in {r[1] for r in rows}}
times = collections.defaultdict(list)
for rnd, shape, d, tool, wall, rss, check in rows:
    times[(shape, d, tool)].append((int(rnd), float(wall), int(rss) // 1024, check))
tools = list(dict.fromkeys(r[3] for r in rows))
print("| shape | direction | tool | median s | MB/s | peak RSS MiB | vs stagehand-s3 (median of per-round ratios) | checks |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (shape, d) in dict.fromkeys((r[1], r[2]) for r in rows):
    base = {rnd: w for rnd, w, _, _ in times[(shape, d, "stagehand-s3")]}
    for tool in tools:
        t = times[(shape, d, tool)]
        if not t:
            continue
        med = statistics.median(w for _, w, _, _ in t)
        ratios = [w / base[rnd] for rnd, w, _, _ in t if base.get(rnd)]
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
        checks = ", ".join(sorted({c for *_, c in t}))
        print(f"| {shape} | {d} | {tool} | {med:.2f} | {size[shape] / med / 1e6:.0f} | {max(r for _, _, r, _ in t)} | {ratio} | {checks} |")
PY
