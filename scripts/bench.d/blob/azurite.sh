#!/usr/bin/env bash
# scripts/bench.d/blob/azurite.sh start|stop|reset|pid PORT
#   start: a private Azurite blob service on 127.0.0.1:PORT, storage in the work dir,
#          pid in the work dir; waits until it answers.
#   stop:  stops the instance started here (by its pid file only).
#   reset: stop, then delete its storage.
# AZURITE_ACCESS_LOG=1: keep Azurite's access log (one line a request) in its log file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: azurite.sh start|stop|reset|pid PORT}
port=${2:?usage: azurite.sh start|stop|reset|pid PORT}
loc=$BENCH_WORK/azurite-$port
pidf=$loc.pid

running() { [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }

case $cmd in
start)
  if running; then echo "azurite on $port already running (pid $(cat "$pidf"))"; exit 0; fi
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then die "port $port is taken by something not started here"; fi
  mkdir -p "$loc"
  # setsid: its own process group, so a benchmark's group kill never reaches it.
  quiet=--silent
  [ "${AZURITE_ACCESS_LOG:-0}" = 1 ] && quiet=
  setsid "$AZURITE" --blobHost 127.0.0.1 --blobPort "$port" --location "$loc" \
    --skipApiVersionCheck --loose $quiet --disableTelemetry \
    >"$loc.log" 2>&1 </dev/null &
  echo $! >"$pidf"
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$ACCOUNT?comp=list" || true)
    if [ "$code" != 000 ]; then echo "azurite on $port: pid $(cat "$pidf")"; exit 0; fi
    running || die "azurite exited; see $loc.log"
    sleep 0.2
  done
  die "azurite on $port did not answer in 20 s; see $loc.log"
  ;;
stop | reset)
  if running; then
    pid=$(cat "$pidf")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "azurite on $port stopped"
  fi
  rm -f "$pidf"
  if [ "$cmd" = reset ]; then rm -rf "$loc" "$loc.log"; fi
  ;;
pid)
  running && cat "$pidf"
  ;;
*) die "usage: azurite.sh start|stop|reset|pid PORT" ;;
esac
