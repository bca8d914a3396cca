#!/bin/sh
# Reads one name per line from the input file and writes a greeting per name to
# greeting.txt in the output folder. The paths arrive as arguments that stagehand
# substituted; they are also in $AZUREML_DATAREFERENCE_names and _greeting.
set -eu
while [ $# -gt 0 ]; do
  case $1 in
    --names) names=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
while IFS= read -r name; do
  echo "${GREETING:-Hello}, $name!"
done <"$names" >"$out/greeting.txt"
echo "wrote $(wc -l <"$out/greeting.txt") greetings for run $STAGEHAND_RUN_ID"
