#!/usr/bin/env bash
# The first build, as `cargo install --locked --path agent` does it (the README's number).
#
#   scripts/bench first-build [JOBS]
#
# Builds the release binary from a clean copy of HEAD in a temporary target folder
# (so the project's own target/ is untouched), and prints the wall time and the CPU
# time of the compilers; CPU / cores is the wall time on an idle machine with that
# many cores. The temporary folder is removed afterwards. Takes minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive HEAD | tar -x -C "$work"
cd "$work"
start=$(date +%s)
/usr/bin/time -f '%U %S' -o "$work/cpu" cargo build --release --locked -p stagehand -j "$jobs" >/dev/null 2>&1
wall=$(( $(date +%s) - start ))
read -r user sys <"$work/cpu"
cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.0f", u + s}')
echo "first release build: ${wall}s wall with -j $jobs; ${cpu}s of CPU (${cpu}s / $jobs cores = $(( cpu / jobs ))s)"
