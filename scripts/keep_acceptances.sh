#!/usr/bin/env bash
# Copy every acceptance marker (accept-*.json, written by perfgate accept) found under FROM into INTO,
# once each: tonight's artifact keeps them all, since the nights they came with expire. The same
# acceptance comes back in every fetched night (each night copied it on), so one name is copied once;
# its name carries a hash of its content, so two acceptances never share one. Two files of one name
# that differ are both kept, the second under a name with its own content's hash, and said.
#   scripts/keep_acceptances.sh FROM INTO
set -euo pipefail
usage="usage: keep_acceptances.sh FROM INTO"
from=${1:?$usage}
into=${2:?$usage}
mkdir -p "$into"
kept=0
while IFS= read -r -d '' found; do
  name=${found##*/}
  target="$into/$name"
  if [ -e "$target" ]; then
    if cmp -s "$found" "$target"; then
      continue
    fi
    target="$into/${name%.json}-$(sha256sum "$found" | cut -c1-12).json"
    echo "keep_acceptances: $found differs from the $name kept already: kept as ${target##*/}" >&2
    [ -e "$target" ] && continue
  fi
  cp "$found" "$target"
  kept=$((kept + 1))
done < <(if [ -d "$from" ]; then find "$from" -name 'accept-*.json' -type f -print0 | sort -z; fi)
echo "keep_acceptances: $kept acceptance(s) kept in $into"
