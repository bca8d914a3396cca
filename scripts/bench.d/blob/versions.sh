#!/usr/bin/env bash
# scripts/bench.d/blob/versions.sh: print the version of every tool the anchors use.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
echo "rclone:             $(rclone version 2>/dev/null | head -1) ($(rclone version 2>/dev/null | grep go/version | tr -d ' '))"
echo "azure-storage-blob: $("$PY" -c 'import azure.storage.blob as b, azure.core as c, sys; print(b.__version__, "(azure-core", c.__version__ + ", Python", sys.version.split()[0] + ")")')"
echo "azcopy:             $("$AZCOPY" --version 2>/dev/null | head -1)"
echo "azurite:            $("$AZURITE" --version 2>/dev/null) ($AZURITE)"
echo "node:               $(node --version)"
echo "curl:               $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "fuse3:              $(fusermount3 --version 2>&1 | head -1)"
echo "kernel:             $(uname -r); $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB"
