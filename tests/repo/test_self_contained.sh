#!/usr/bin/env bash
# The repository stands alone: a user's clone has nothing beside it, so no tracked file may point at a
# folder outside the checkout (../shared and the like). The golden fixtures' README is the one exception:
# it says where the fixtures came from. Skips (77) outside a git checkout (a source tarball).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
git rev-parse --is-inside-work-tree > /dev/null 2>&1 || { echo "SKIP: not a git checkout"; exit 77; }
# Every tracked text file, this script aside (it has to name what it looks for).
hits=$(git grep -n -I -e '\.\./shared' -- . ':!tests/golden/data/README.md' ':!tests/repo/test_self_contained.sh' || true)
if [[ -n $hits ]]; then
  echo "FAIL: tracked files refer to ../shared, which a clone does not have:"
  echo "$hits"
  exit 1
fi
# The check can fail: a file naming ../shared in a scratch index is found.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
git -C "$probe" init -q && printf 'see ../shared/golden\n' > "$probe/doc.md" && git -C "$probe" add doc.md
[[ -n $(git -C "$probe" grep -n -I -e '\.\./shared' -- . || true) ]] || { echo "FAIL: the probe was not found"; exit 1; }
echo "PASS: no tracked file refers to ../shared"
