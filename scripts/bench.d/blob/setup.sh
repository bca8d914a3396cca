#!/usr/bin/env bash
# scripts/bench.d/blob/setup.sh: install the anchors, each from its ordinary registry.
#   rclone              Debian package (1.60.1 on bookworm)
#   azure-storage-blob  PyPI, in a venv in the work dir
#   azcopy              npm package @azure-tools/azcopy-linux (ships Microsoft's binary),
#                       which needs Debian's libsecret-1-0
#   azurite             npm, the version pinned in lib.sh, in the work dir (unless AZURITE is set)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v rclone >/dev/null || need_apt+=(rclone)
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
dpkg -s libsecret-1-0 >/dev/null 2>&1 || need_apt+=(libsecret-1-0)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -x "$PY" ]; then
  python3 -m venv "$BENCH_WORK/venv"
  "$PY" -m pip install -q azure-storage-blob
fi

mkdir -p "$BENCH_WORK/npm"
if [ ! -f "$AZCOPY" ]; then
  (cd "$BENCH_WORK/npm" && npm install --no-audit --no-fund --silent @azure-tools/azcopy-linux@10.32.2)
fi
chmod +x "$AZCOPY"
if [ ! -x "$AZURITE" ]; then
  (cd "$BENCH_WORK/npm" && npm install --no-audit --no-fund --silent "azurite@$AZURITE_VERSION")
fi

mkdir -p "$AZCOPY_LOG_LOCATION" "$AZCOPY_JOB_PLAN_LOCATION"
echo "work dir: $BENCH_WORK"
bash "$BENCH_HERE/versions.sh"
