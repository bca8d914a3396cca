#!/usr/bin/env bash
# scripts/bench aml_survey: how many of Azure/azureml-examples' command jobs plan as
# they are (issue 18's measure of "Azure ML jobs as people actually write them").
#
# Takes every YAML under cli/jobs of a clone (pipelines and components excluded) whose
# `$schema` names a command job or whose top-level `type` is `command` (and whose
# `$schema`, if any, is not a component's), and runs
# `stagehand plan` on it with a workspace that registers only the default datastore
# (`workspaceblobstore`). Prints each job's verdict, the refusals with their reasons,
# and the count.
#
#   scripts/bench aml_survey [GIT_DIR]        # default: /work/.mirror/Azure+azureml-examples/repo
#   STAGEHAND=path/to/stagehand scripts/bench aml_survey   # default: target/debug/stagehand
#   ASSETS=1 scripts/bench aml_survey         # also register the data assets the jobs name
#
# The clone is read with git (no work tree needed); cli/jobs and cli/assets are
# extracted to a temporary folder (files a mirror lacks are left out), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
git_dir=${1:-/work/.mirror/Azure+azureml-examples/repo}
bin=${STAGEHAND:-$root/target/debug/stagehand}
[ -x "$bin" ] || { echo "no stagehand at $bin: cargo build -p stagehand, or set STAGEHAND" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# File by file: a mirror may lack some large blobs (images, data), which no plan reads.
git --git-dir="$git_dir" ls-tree -r HEAD cli/jobs cli/assets | while read -r mode type sha path; do
  [ "$type" = blob ] || continue
  mkdir -p "$tmp/$(dirname "$path")"
  if [ "$mode" = 120000 ]; then
    ln -s "$(git --git-dir="$git_dir" cat-file blob "$sha")" "$tmp/$path" 2>/dev/null || true
  else
    git --git-dir="$git_dir" cat-file blob "$sha" >"$tmp/$path" 2>/dev/null || rm -f "$tmp/$path"
  fi
done
commit=$(git --git-dir="$git_dir" rev-parse --short HEAD)

ws=$tmp/workspace.yaml
cat >"$ws" <<'EOF'
default_datastore: workspaceblobstore
datastores:
  workspaceblobstore: {type: azure_blob, account_name: examplestorage, container_name: azureml-blobstore}
EOF
if [ "${ASSETS:-0}" = 1 ]; then
  # The data assets azureml-examples' jobs name, registered as its setup scripts do.
  cat >>"$ws" <<'EOF'
data_assets:
  - {name: cifar-10-example, version: 1, path: "azureml://datastores/workspaceblobstore/paths/cifar-10/"}
  - {name: sampledata, version: 1, path: "azureml://datastores/workspaceblobstore/paths/sampledata/"}
  - {name: local-folder-example, version: 1, path: "azureml://datastores/workspaceblobstore/paths/local-folder-example/"}
EOF
fi

jobs=()
while IFS= read -r f; do
  # A component declares `type: command` too; its schema says it is one.
  grep -qiE '^\$schema:.*component' "$f" && continue
  if grep -qiE '^\$schema:.*commandjob|^type:[[:space:]]*command[[:space:]]*$' "$f"; then
    jobs+=("$f")
  fi
done < <(find "$tmp/cli/jobs" -name '*.yml' -o -name '*.yaml' | grep -v -E '/cli/jobs/pipelines' | sort)

planned=0
refused=0
report=$tmp/refusals.txt
: >"$report"
for f in "${jobs[@]}"; do
  rel=${f#"$tmp"/}
  if out=$(env -u STAGEHAND_WORKSPACE "$bin" plan "$f" --workspace "$ws" --run-dir "$tmp/run" 2>&1 >/dev/null); then
    planned=$((planned + 1))
    echo "planned  $rel"
  else
    refused=$((refused + 1))
    echo "refused  $rel"
    {
      echo "$rel"
      grep -v '^stagehand: ' <<<"$out" | sed -e "s|$tmp/||g" -e 's/^/    /'
    } >>"$report"
  fi
done
total=${#jobs[@]}
echo
echo "refusals:"
cat "$report"
echo
echo "azureml-examples $commit: $planned of $total command jobs plan ($((planned * 100 / total))%), $refused refused"
