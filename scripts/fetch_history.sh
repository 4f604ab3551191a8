#!/usr/bin/env bash
# Download one artifact (a night's reports: results.json, compare.json, ...) of the last N finished runs
# of WORKFLOW on main into DIR, one folder per run, with gh. Nights that failed (a regression, a crash)
# are fetched too: compare --annotate wrote its verdicts into their results, which keep a regressed case
# out of the reference until someone accepts it (perfgate accept). Runs of other branches never are.
#   scripts/fetch_history.sh DIR ARTIFACT [N] [WORKFLOW]
# ARTIFACT names one workflow and hardware class (perfgate-nightly-cpu-avx2, ...): histories never mix.
set -euo pipefail
usage="usage: fetch_history.sh DIR ARTIFACT [N] [WORKFLOW]"
dir=${1:?$usage}
artifact=${2:?$usage}
count=${3:-10}
workflow=${4:-nightly.yml}
mkdir -p "$dir"
# Finished runs only (the running one has no conclusion yet); cancelled and skipped ones left no results.
finished=$(gh run list --workflow "$workflow" --branch main --limit "$((count * 3))" --json databaseId,conclusion |
  python3 -c 'import json, sys; print(" ".join(str(r["databaseId"]) for r in json.load(sys.stdin) if r["conclusion"] in ("success", "failure")))')
fetched=0
for run in $finished; do
  [ "$fetched" -lt "$count" ] || break
  if gh run download "$run" --name "$artifact" --dir "$dir/$run" 2>/dev/null; then
    fetched=$((fetched + 1))
  else
    echo "fetch_history: run $run has no artifact $artifact (another hardware class, or it ended before uploading)" >&2
  fi
done
echo "fetch_history: $fetched run(s) of $workflow on main with $artifact in $dir"
