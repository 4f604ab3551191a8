#!/usr/bin/env bash
# Download the results of the last N successful nightly runs into DIR (one subdirectory each), with gh.
set -euo pipefail
dir=${1:?usage: fetch_history.sh DIR [N]}
count=${2:-10}
mkdir -p "$dir"
for run in $(gh run list --workflow nightly.yml --status success --limit "$count" --json databaseId --jq '.[].databaseId'); do
  gh run download "$run" --name perfgate-nightly --dir "$dir/$run" || echo "fetch_history: run $run has no results" >&2
done
