#!/usr/bin/env bash
# Download one artifact (a night's reports: CLASS/results.json, compare.json, acceptances, ...) of the last
# N finished runs of WORKFLOW on the default branch into DIR, one folder per run, with gh. Nights that
# failed (a regression, a crash) are fetched too: compare --annotate wrote its verdicts into their results,
# which keep a regressed case out of the reference until someone accepts it (perfgate accept).
#   scripts/fetch_history.sh DIR ARTIFACT [N] [WORKFLOW]
# Environment:
#   BRANCH   the branch whose runs count (default: the repository's default branch, asked of gh)
#   EVENTS   the events whose runs count (default: "schedule workflow_dispatch": a nightly's own runs; a
#            pull request's run, a fork's included, never is history)
# What was fetched, or why nothing could be, is written to DIR/fetch.txt (the night's summary quotes it)
# and to stderr. gh's own words are kept: a run without the artifact (it expired,
# or the run ended before uploading) is skipped and named; any other gh failure (auth, network, an
# unknown workflow) fails the script, exit 1, since a partial history could lose an acceptance.
set -euo pipefail
usage="usage: fetch_history.sh DIR ARTIFACT [N] [WORKFLOW]"
dir=${1:?$usage}
artifact=${2:?$usage}
count=${3:-10}
workflow=${4:-nightly.yml}
events=${EVENTS:-schedule workflow_dispatch}
mkdir -p "$dir"

# A line that starts with "FAILED: " says why no (or no whole) history was fetched: perfgate join-night
# counts it among the reasons the night is red.
say() { # one line to stderr and DIR/fetch.txt
  echo "fetch_history: $1" >&2
  echo "$1" >> "$dir/fetch.txt"
}
: > "$dir/fetch.txt"

branch=${BRANCH:-}
if [ -z "$branch" ]; then
  if ! branch=$(gh repo view --json defaultBranchRef --jq .defaultBranchRef.name 2> "$dir/.gh-error"); then
    say "FAILED: could not ask gh for the default branch: $(tr '\n' ' ' < "$dir/.gh-error")"
    rm -f "$dir/.gh-error"
    exit 1
  fi
fi
if ! listed=$(gh run list --workflow "$workflow" --branch "$branch" --limit "$((count * 3))" \
  --json databaseId,conclusion,event 2> "$dir/.gh-error"); then
  say "FAILED: gh run list failed, so no history was fetched: $(tr '\n' ' ' < "$dir/.gh-error")"
  rm -f "$dir/.gh-error"
  exit 1
fi
# Finished runs of the nightly's own events only: the running one has no conclusion yet, cancelled and
# skipped ones left no verdicts.
runs=$(EVENTS="$events" python3 -c '
import json, os, sys
events = os.environ["EVENTS"].split()
runs = json.load(sys.stdin)
print(" ".join(str(r["databaseId"]) for r in runs if r["conclusion"] in ("success", "failure") and r["event"] in events))
' <<< "$listed")
fetched=0
skipped=()
for run in $runs; do
  [ "$fetched" -lt "$count" ] || break
  if gh run download "$run" --name "$artifact" --dir "$dir/$run" 2> "$dir/.gh-error"; then
    fetched=$((fetched + 1))
    continue
  fi
  error=$(tr '\n' ' ' < "$dir/.gh-error")
  rm -rf "${dir:?}/$run"
  case "$error" in
    *"no valid artifacts found to download"* | *"no artifact matches any of the names or patterns provided"*)
      skipped+=("$run") ;;
    *)
      say "FAILED: gh run download $run failed: $error(after $fetched run(s); the history would be partial)"
      rm -f "$dir/.gh-error"
      exit 1 ;;
  esac
done
rm -f "$dir/.gh-error"
if [ "${#skipped[@]}" -gt 0 ]; then
  say "run(s) ${skipped[*]} have no artifact $artifact (expired, or the run ended before uploading): skipped"
fi
if [ "$fetched" -eq 0 ]; then
  say "fetched no run: no finished $events run of $workflow on $branch has $artifact yet (every case is new)"
else
  say "fetched $fetched run(s) of $workflow on $branch ($events) with $artifact"
fi
