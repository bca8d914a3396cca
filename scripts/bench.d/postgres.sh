#!/usr/bin/env bash
# scripts/bench postgres: a database input's export against psql's \copy of the same query.
#
# Starts a private PostgreSQL cluster (initdb in a temporary folder, a free port; as
# `nobody` when run as root), fills `bench` with ROWS rows (id, md5 text, timestamp,
# numeric), then ROUNDS times, paired and alternating which goes first: stagehand runs a
# job whose input is `query: SELECT * FROM bench ORDER BY id` (the job itself is
# `true`), and psql runs `\copy (SELECT * FROM bench ORDER BY id) TO FILE WITH (FORMAT
# csv, HEADER)`. Prints each pair (the export's own time from the `query_exported`
# event, the agent's wall time, psql's wall time), the medians, the bytes, and the
# agent's peak RSS (the `finished` event) for ROWS and for 5 x ROWS rows, to show that
# it does not grow with the table.
#
#   ROWS=1000000 ROUNDS=5 scripts/bench postgres
#   STAGEHAND=path/to/stagehand scripts/bench postgres   # default: target/release, else debug
#   PG_BIN=/usr/lib/postgresql/15/bin scripts/bench postgres   # default: the newest installed
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
rows=${ROWS:-1000000}
rounds=${ROUNDS:-5}
bin=${STAGEHAND:-}
[ -n "$bin" ] || { [ -x "${CARGO_TARGET_DIR:-target}/release/stagehand" ] && bin=${CARGO_TARGET_DIR:-$root/target}/release/stagehand || bin=${CARGO_TARGET_DIR:-$root/target}/debug/stagehand; }
[ -x "$bin" ] || { echo "no stagehand binary at $bin: cargo build --release -p stagehand" >&2; exit 1; }
pg=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$pg/initdb" ] || { echo "no PostgreSQL server programs (apt-get install postgresql, or set PG_BIN)" >&2; exit 1; }

d=$(mktemp -d /tmp/stagehand-bench-pg-XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then
  chown nobody "$d"
  as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
pid=
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -rf "$d"
}
trap cleanup EXIT
echo bench-superuser >"$d/pw"
"${as[@]}" "$pg/initdb" -D "$d/data" -U postgres -E UTF8 --no-locale --auth-local=trust \
  --auth-host=scram-sha-256 --pwfile="$d/pw" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as[@]}" "$pg/postgres" -D "$d/data" -p "$port" -k "$d" -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off >"$d/server.log" 2>&1 &
pid=$!
export PGPASSWORD=bench-superuser PGSSLMODE=disable
psql=("$pg/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1)
for _ in $(seq 100); do "${psql[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done

fill() {
  "${psql[@]}" -c "DROP TABLE IF EXISTS bench" -c "CREATE TABLE bench AS SELECT i AS id, md5(i::text) AS h,
    timestamp '2024-01-01' + i * interval '1 second' AS at, (i * 1.5)::numeric(12,2) AS amount
    FROM generate_series(1, $1) i" -c "VACUUM ANALYZE bench" 2>&1 | grep -v NOTICE || true
}

cat >"$d/workspace.yaml" <<WS
default_datastore: local
datastores:
  local: {type: local, root: ./store}
  db: {type: postgresql, host: 127.0.0.1, port: $port, database: postgres, user: postgres, password: {env: BENCH_PG_PASSWORD}, sslmode: disable}
WS
mkdir -p "$d/store"
cat >"$d/job.yaml" <<'JOB'
name: bench-pg
command: ["true"]
inputs:
  rows: {datastore: db, query: "SELECT * FROM bench ORDER BY id", mode: download}
JOB

now() { date +%s.%N; }
agent() { # $1: tag; prints "export_ms wall_s peak_rss_bytes bytes"
  local t0 t1
  t0=$(now)
  BENCH_PG_PASSWORD=bench-superuser "$bin" run "$d/job.yaml" --run-id "$1" --run-dir "$d/run-$1" \
    --events "$d/$1.jsonl" >/dev/null 2>"$d/$1.log"
  t1=$(now)
  python3 - "$d/$1.jsonl" "$t0" "$t1" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
q = next(e for e in ev if e["event"] == "query_exported")
f = next(e for e in ev if e["event"] == "finished")
print(q["duration_ms"], f"{float(sys.argv[3]) - float(sys.argv[2]):.3f}", f.get("peak_rss_bytes", 0), q["bytes"], q["rows"])
PY
}
copy() { # prints "wall_s bytes"
  local t0 t1
  rm -f "$d/psql.csv"
  t0=$(now)
  "${psql[@]}" -c "\\copy (SELECT * FROM bench ORDER BY id) TO '$d/psql.csv' WITH (FORMAT csv, HEADER)"
  t1=$(now)
  echo "$(python3 -c "print(f'{$t1 - $t0:.3f}')") $(stat -c %s "$d/psql.csv")"
}

fill "$rows"
echo "rows=$rows rounds=$rounds stagehand=$bin postgres=$("$pg/postgres" --version)"
agent warm >/dev/null; copy >/dev/null # caches warm, the first connection made
: >"$d/pairs"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then a=$(agent "r$r"); c=$(copy); else c=$(copy); a=$(agent "r$r"); fi
  read -r ems awall rss abytes arows <<<"$a"
  read -r cwall cbytes <<<"$c"
  [ "$abytes" = "$cbytes" ] || echo "warning: stagehand wrote $abytes bytes, psql $cbytes" >&2
  printf 'round %d: stagehand export %6.3fs (run %6.3fs)  psql \\copy %6.3fs  peak RSS %5.1f MiB\n' \
    "$r" "$(python3 -c "print($ems/1000)")" "$awall" "$cwall" "$(python3 -c "print($rss/1048576)")"
  echo "$ems $awall $cwall $rss" >>"$d/pairs"
  rm -rf "$d/run-r$r"
done
python3 - "$d/pairs" "$abytes" "$arows" <<'PY'
import sys, statistics as st
p = [list(map(float, l.split())) for l in open(sys.argv[1])]
e, a, c, r = (st.median(x[i] for x in p) for i in range(4))
print(f"median: stagehand export {e/1000:.3f}s, run {a:.3f}s; psql \\copy {c:.3f}s; export/psql = {e/1000/c:.2f}; "
      f"{int(sys.argv[3])} rows, {int(sys.argv[2])/1048576:.1f} MiB; peak RSS {r/1048576:.1f} MiB")
PY
fill $((rows * 5))
read -r ems _ rss abytes arows <<<"$(agent big)"
printf '%d rows (%.1f MiB): export %.3fs, peak RSS %.1f MiB\n' "$arows" "$(python3 -c "print($abytes/1048576)")" \
  "$(python3 -c "print($ems/1000)")" "$(python3 -c "print($rss/1048576)")"
