# scripts/bench.d/blob/lib.sh: sourced by the bench scripts (from the shared anchor harness); sets paths, endpoints and tool locations.
#
# Everything large (datasets, tools, Azurite's storage, results) lives in a work dir made
# with mktemp, never beside these scripts: set BENCH_WORK to choose one, otherwise the first
# run makes one and remembers it in .tools/bench-workdir.

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_HERE/../../.." && pwd)
# The work dir's name is remembered in .tools (git-ignored), never the data itself.
BENCH_REMEMBER=$BENCH_REPO/.tools/bench-workdir
if [ -z "${BENCH_WORK:-}" ]; then
  if [ -s "$BENCH_REMEMBER" ] && [ -d "$(cat "$BENCH_REMEMBER")" ]; then
    BENCH_WORK=$(cat "$BENCH_REMEMBER")
  else
    BENCH_WORK=$(mktemp -d -t stagehand-bench.XXXXXX)
    mkdir -p "$(dirname "$BENCH_REMEMBER")"
    echo "$BENCH_WORK" >"$BENCH_REMEMBER"
  fi
fi
export BENCH_WORK

# The Azurite instance that holds the download datasets, and the one restarted empty for uploads.
# Not the shared harness's 10100/10101: other checkouts may run that one at the same time.
BENCH_PORT=${BENCH_PORT:-10160}
BENCH_UP_PORT=${BENCH_UP_PORT:-10161}
export BENCH_PORT BENCH_UP_PORT # azblob.py reads BENCH_PORT

# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT=devstoreaccount1
ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export ACCOUNT ACCOUNT_KEY

endpoint() { echo "http://127.0.0.1:${1:-$BENCH_PORT}/$ACCOUNT"; }

# Tools installed by setup.sh into the work dir (or found on PATH).
PY=$BENCH_WORK/venv/bin/python
AZCOPY=$BENCH_WORK/npm/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64
# Azurite: the version in scripts/azurite.version (that of the shared anchors, and of the
# tests), installed by setup.sh in the work dir: versions differ in cost (3.37 computes a
# CRC64 of every block staged without a Content-MD5), and runs must compare like with
# like. AZURITE= chooses another; the results name the version used.
AZURITE_VERSION=$(cat "$BENCH_REPO/scripts/azurite.version")
AZURITE=${AZURITE:-$BENCH_WORK/npm/node_modules/.bin/azurite-blob}
DATA=$BENCH_WORK/data
RESULTS=${BENCH_RESULTS:-$BENCH_WORK/results}

# AzCopy keeps job plans and logs in the home dir unless told otherwise.
export AZCOPY_LOG_LOCATION=$BENCH_WORK/azcopy/logs
export AZCOPY_JOB_PLAN_LOCATION=$BENCH_WORK/azcopy/plans

# The Python helper: SAS generation, SDK download/upload.
azblob() { "$PY" "$BENCH_HERE/azblob.py" "$@"; }

# Container SAS URL (read/add/create/write/delete/list, one day) for a container on PORT.
sas_url() { # CONTAINER [PORT]
  local port=${2:-$BENCH_PORT}
  echo "$(endpoint "$port")/$1?$(AZ_ENDPOINT=$(endpoint "$port") azblob sas "$1")"
}

# Define an rclone remote NAME for one container, through environment variables.
# rclone 1.60's account/key mode builds https://ACCOUNT.ENDPOINT (no http, no port path)
# and use_emulator is fixed to port 10000, so a container SAS URL is the way in.
rclone_remote() { # NAME CONTAINER [PORT]
  local up
  up=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  export "RCLONE_CONFIG_${up}_TYPE=azureblob"
  export "RCLONE_CONFIG_${up}_SAS_URL=$(sas_url "$2" "${3:-$BENCH_PORT}")"
}

die() { echo "$*" >&2; exit 1; }

# Put the rclone remotes azbig, azsmall, azmedium (download Azurite) and azup (upload
# Azurite), and SAS tokens SAS_big, SAS_small, SAS_medium, SAS_up, in the environment.
export_creds() {
  export RCLONE_CONFIG=/dev/null # no config file: remotes come from the environment only
  local c url
  for c in big small medium; do
    rclone_remote "az$c" "$c"
    url=$(eval echo "\$RCLONE_CONFIG_AZ$(echo "$c" | tr '[:lower:]' '[:upper:]')_SAS_URL")
    export "SAS_$c=${url#*\?}"
  done
  rclone_remote azup uploads "$BENCH_UP_PORT"
  url=$RCLONE_CONFIG_AZUP_SAS_URL
  export "SAS_up=${url#*\?}"
}
sas_of() { local v="SAS_$1"; echo "${!v}"; }

# stagehand: the release binary of this checkout (scripts/bench builds it), and a workspace
# with one datastore per container: big, medium, small (download Azurite) and up (upload
# Azurite, container uploads). The key comes from the environment, as in production.
STAGEHAND=${STAGEHAND:-$BENCH_REPO/target/release/stagehand}
stagehand_workspace() {
  local ws=$BENCH_WORK/stagehand/workspace.yaml
  mkdir -p "$(dirname "$ws")"
  {
    echo "datastores:"
    for c in big medium small; do
      printf '  %s: {type: azure_blob, account_name: %s, container_name: %s, endpoint: "%s", credentials: {account_key: {env: ACCOUNT_KEY}}}\n' "$c" "$ACCOUNT" "$c" "$(endpoint)"
    done
    printf '  up: {type: azure_blob, account_name: %s, container_name: uploads, endpoint: "%s", credentials: {account_key: {env: ACCOUNT_KEY}}}\n' "$ACCOUNT" "$(endpoint "$BENCH_UP_PORT")"
  } >"$ws"
  echo "$ws"
}
